"""Experiment tracking behind a small interface, with MLflow as the implementation.

`start_run(stage, ...)` yields a `Tracker` with `log_params`, `log_metrics(step=...)`, `log_artifact`
and `set_tags`.  The default store is a sqlite file in the repository (`mlflow.db`, gitignored) so that
`mlflow ui --backend-store-uri sqlite:///mlflow.db` browses it; `MLFLOW_TRACKING_URI` or
`tracking.uri` points runs at a shared server.  A run opened inside another is nested under it, and a
parent run id in `AER_PARENT_RUN_ID` nests stage runs (other processes) under a pipeline run.  If the server cannot be reached the run goes on with a `LocalTracker` that
writes the same calls to `.tracking_fallback/` and warns; tracking never stops training.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dvc_stage_hash(address: Optional[str] = None) -> Optional[str]:
    """md5 of what DVC compares to decide whether a stage is stale: its command, and the hash of every
    dependency and of its tracked param values (the stage's dvc.lock entry without outputs).  Two runs with
    the same hash had identical inputs.  `address` defaults to $DVC_STAGE, which `dvc repro` sets for the
    stage's command; None outside DVC (a manual run may carry --set overrides that DVC never saw) or
    when DVC cannot read the stage (warned; tracking never stops a stage)."""
    address = address or os.environ.get("DVC_STAGE")
    if not address:
        return None
    import hashlib

    try:
        from dvc.repo import Repo

        with Repo(os.environ.get("DVC_ROOT") or None) as repo:
            (stage,) = repo.stage.collect(address)
            payload = {"cmd": stage.cmd, "deps": {d.def_path: d.get_hash().value for d in stage.deps}}
    except Exception as exc:  # DVC missing, stage renamed, dependency unreadable: log without the hash
        warnings.warn(f"could not compute the DVC hash of stage {address!r}: {exc}", RuntimeWarning, stacklevel=2)
        return None
    return hashlib.md5(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def resolve_uri(configured: Optional[str] = None) -> str:
    """An explicit URI (tracking.uri) wins, then $MLFLOW_TRACKING_URI, then the repo's sqlite file."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def _server_reachable(uri: str, timeout: float = 3.0) -> bool:
    if not uri.startswith(("http://", "https://")):
        return True
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return True
    except Exception:
        return False


def _metric_name(key: str) -> str:
    """MLflow accepts only alphanumerics, '_', '-', '.', ' ', ':' and '/' in metric names."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", key)


class Tracker:
    """Interface; the methods swallow nothing, so implementations decide how to degrade."""

    run_id: Optional[str] = None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None: ...
    def log_artifact(self, path: str | os.PathLike, artifact_path: Optional[str] = None) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def log_dir(self, path: str | os.PathLike, artifact_path: Optional[str] = None) -> None: ...


class LocalTracker(Tracker):
    """Appends every call as a JSON line under `root` (used when MLflow is off or unreachable)."""

    def __init__(self, root: str | os.PathLike, stage: str) -> None:
        self.dir = Path(root) / f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.dir / "events.jsonl", "a", encoding="utf-8")

    def _write(self, kind: str, **payload: Any) -> None:
        self._fh.write(json.dumps({"kind": kind, "time": time.time(), **payload}, default=str) + "\n")
        self._fh.flush()

    def log_params(self, params):
        self._write("params", params=dict(params))

    def log_metrics(self, metrics, step=None):
        self._write("metrics", step=step, metrics={k: float(v) for k, v in metrics.items()})

    def log_artifact(self, path, artifact_path=None):
        self._write("artifact", path=str(path), artifact_path=artifact_path)

    def set_tags(self, tags):
        self._write("tags", tags=dict(tags))

    def log_dir(self, path, artifact_path=None):
        self._write("artifact_dir", path=str(path), artifact_path=artifact_path)

    def close(self) -> None:
        self._fh.close()


class MlflowTracker(Tracker):
    """Thin adapter over an active MLflow run; a failing call falls back to the local log and warns."""

    def __init__(self, mlflow_module, run, fallback: LocalTracker | None = None) -> None:
        self._m = mlflow_module
        self.run_id = run.info.run_id
        self._fallback = fallback
        self._root = None

    def _guard(self, name: str, *args, **kwargs) -> None:
        try:
            getattr(self._m, name)(*args, **kwargs)
        except Exception as exc:  # a tracking outage must not stop the stage
            if self._fallback is None:
                self._fallback = LocalTracker(".tracking_fallback", "mlflow-outage")
            warnings.warn(f"MLflow {name} failed ({type(exc).__name__}: {exc}); "
                          f"writing to {self._fallback.dir} instead", RuntimeWarning, stacklevel=3)
            {"log_params": self._fallback.log_params, "log_metrics": self._fallback.log_metrics,
             "log_artifact": self._fallback.log_artifact, "set_tags": self._fallback.set_tags,
             "log_artifacts": self._fallback.log_dir}[name](*args, **kwargs)

    def log_params(self, params):
        clean = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in params.items()}
        items = list(clean.items())
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self._guard("log_params", dict(items[i:i + 100]))

    def log_metrics(self, metrics, step=None):
        self._guard("log_metrics", {_metric_name(k): float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path, artifact_path=None):
        self._guard("log_artifact", str(path), artifact_path=artifact_path)

    def set_tags(self, tags):
        self._guard("set_tags", {k: str(v) for k, v in tags.items()})

    def log_dir(self, path, artifact_path=None):
        self._guard("log_artifacts", str(path), artifact_path=artifact_path)


def _experiment_id(mlflow, name: str) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        location = Path(DEFAULT_ARTIFACTS).resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


@contextlib.contextmanager
def start_run(stage: str, *, experiment: str = "aer-pipeline", uri: Optional[str] = None,
              enabled: bool = True, tags: Optional[Mapping[str, Any]] = None,
              run_name: Optional[str] = None) -> Iterator[Tracker]:
    """Open a tracked run for `stage`; nested under $AER_PARENT_RUN_ID when set."""
    uri = resolve_uri(uri)
    reachable = enabled and _server_reachable(uri)
    if enabled and not reachable:
        warnings.warn(f"MLflow server {uri} is unreachable; stage '{stage}' logs to .tracking_fallback/ "
                      "and continues", RuntimeWarning, stacklevel=3)
    if not reachable:
        tracker = LocalTracker(".tracking_fallback", stage)
        try:
            yield tracker
        finally:
            tracker.close()
        return
    import mlflow

    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)  # also writes $MLFLOW_TRACKING_URI; restored below
    exp_id = _experiment_id(mlflow, experiment)
    active = mlflow.active_run()
    parent = active.info.run_id if active is not None else os.environ.get("AER_PARENT_RUN_ID")
    all_tags = {"stage": stage, "git_sha": git_sha(), "dvc_stage": os.environ.get("DVC_STAGE", stage),
                **(tags or {})}
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    status = "FINISHED"
    # Not `with start_run(...)`: its exit would end the run a second time, which ends the parent too.
    run = mlflow.start_run(experiment_id=exp_id, run_name=run_name or stage, nested=active is not None,
                           tags={k: str(v) for k, v in all_tags.items()})
    try:
        yield MlflowTracker(mlflow, run)
    except BaseException:
        status = "FAILED"
        raise
    finally:
        mlflow.end_run(status=status)
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


def open_parent(name: str, *, experiment: str = "aer-pipeline", uri: Optional[str] = None) -> Optional[str]:
    """Start a parent run (left open) and return its id; None when the server is unreachable."""
    uri = resolve_uri(uri)
    if not _server_reachable(uri):
        warnings.warn(f"MLflow server {uri} is unreachable; no parent run", RuntimeWarning, stacklevel=2)
        return None
    import mlflow

    client = mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    run = client.create_run(_experiment_id(mlflow, experiment), run_name=name,
                            tags={"git_sha": git_sha(), "kind": "pipeline"})
    return run.info.run_id


def close_parent(run_id: str, status: str = "FINISHED", uri: Optional[str] = None) -> None:
    import mlflow

    mlflow.MlflowClient(resolve_uri(uri)).set_terminated(run_id, status=status)


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m pipeline.tracking wrap NAME -- CMD...`: run CMD with its stage runs nested under a new
    parent run; `open NAME` prints a parent run id; `close RUN_ID [STATUS]` ends it."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["open"] and len(args) == 2:
        print(open_parent(args[1]) or "")
        return 0
    if args[:1] == ["close"] and len(args) in (2, 3):
        close_parent(args[1], args[2] if len(args) == 3 else "FINISHED")
        return 0
    if args[:1] == ["wrap"] and "--" in args:
        name, cmd = args[1], args[args.index("--") + 1:]
        run_id = open_parent(name)
        env = {**os.environ, **({"AER_PARENT_RUN_ID": run_id} if run_id else {})}
        rc = subprocess.run(cmd, env=env).returncode
        if run_id:
            close_parent(run_id, "FINISHED" if rc == 0 else "FAILED")
        return rc
    print("usage: python -m pipeline.tracking (wrap NAME -- CMD... | open NAME | close RUN_ID [STATUS])")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
