"""Experiment tracking behind a small interface, with MLflow as the implementation.

`start_run(stage, ...)` yields a `Tracker` with `log_params`, `log_metrics(step=...)`, `log_artifact`
and `set_tags`.  The default store is a sqlite file in the repository (`mlflow.db`, gitignored) so that
`mlflow ui --backend-store-uri sqlite:///mlflow.db` browses it; `MLFLOW_TRACKING_URI` or
`tracking.uri` points runs at a shared server.  A run opened inside another is nested under it, and a
parent run id in `AER_PARENT_RUN_ID` nests stage runs (other processes) under a pipeline run.  If the server cannot be reached the run goes on with a `LocalTracker` that
writes the same calls to `.tracking_fallback/` and warns; tracking never stops training.

Outages: MLflow's HTTP defaults (120 s timeout, 7 retries with backoff: ~255 s per call) are lowered for
this process to a 5 s timeout and no retries, unless set explicitly.  The first failing call marks the run
dead: one warning says where the rest goes, every later call (end of run included) goes to the local log
without touching the server, and nothing a tracker does changes the stage's exit code.
Credentials in a tracking URI (`http://user:pass@host`) are redacted from every warning, param and tag.
`tracking.enabled: false` logs nowhere and creates no directory.
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
FALLBACK_DIR = ".tracking_fallback"
# Per-process defaults for MLflow's HTTP client (read at every request); explicit settings win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")


def redact(value: Any) -> Any:
    """Text with the user:password part of every URL replaced by ***; other values unchanged."""
    return _USERINFO.sub(r"\g<scheme>***@", value) if isinstance(value, str) else value


def short_http_timeouts() -> None:
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


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
        self._write("params", params={k: redact(v) for k, v in params.items()})

    def log_metrics(self, metrics, step=None):
        self._write("metrics", step=step, metrics={k: float(v) for k, v in metrics.items()})

    def log_artifact(self, path, artifact_path=None):
        self._write("artifact", path=str(path), artifact_path=artifact_path)

    def set_tags(self, tags):
        self._write("tags", tags={k: redact(v) for k, v in tags.items()})

    def log_dir(self, path, artifact_path=None):
        self._write("artifact_dir", path=str(path), artifact_path=artifact_path)

    def close(self) -> None:
        self._fh.close()


class NullTracker(Tracker):
    """`tracking.enabled: false`: every call is accepted and nothing is written anywhere."""

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step=None):
        pass

    def log_artifact(self, path, artifact_path=None):
        pass

    def set_tags(self, tags):
        pass

    def log_dir(self, path, artifact_path=None):
        pass

    def close(self) -> None:
        pass


class MlflowTracker(Tracker):
    """Thin adapter over an active MLflow run.  The first failing call ends all remote calls for the run:
    it and every later call go to a local log, announced by one warning naming where."""

    def __init__(self, mlflow_module, run, fallback: LocalTracker | None = None, stage: str = "mlflow-outage",
                 uri: str = "") -> None:
        self._m = mlflow_module
        self.run_id = run.info.run_id
        self._fallback = fallback
        self._stage, self._uri = stage, uri
        self.dead = False

    def _local(self) -> LocalTracker:
        if self._fallback is None:
            self._fallback = LocalTracker(FALLBACK_DIR, self._stage)
        return self._fallback

    def _guard(self, name: str, *args, **kwargs) -> None:
        if not self.dead:
            try:
                getattr(self._m, name)(*args, **kwargs)
                return
            except Exception as exc:  # a tracking outage must not stop (or stall) the stage
                self.dead = True
                warnings.warn(redact(
                    f"MLflow server {self._uri} failed during {name} ({type(exc).__name__}: {exc}); no further "
                    f"calls go to it for this run: params, metrics and artifacts from here on are written to "
                    f"{self._local().dir / 'events.jsonl'} and the stage continues"), RuntimeWarning, stacklevel=3)
        local = self._local()
        {"log_params": local.log_params, "log_metrics": local.log_metrics, "log_artifact": local.log_artifact,
         "set_tags": local.set_tags, "log_artifacts": local.log_dir}[name](*args, **kwargs)

    def end(self, status: str) -> None:
        """End the MLflow run; after an outage only the local bookkeeping is cleared (no remote call)."""
        if self.dead:
            _forget_active_run(self._m)
        else:
            try:
                self._m.end_run(status=status)
            except Exception as exc:  # the run's data is logged; a failed close must not change the exit code
                self.dead = True
                warnings.warn(redact(f"MLflow server {self._uri} failed while ending run {self.run_id} "
                                     f"({type(exc).__name__}: {exc}); the run stays open there, the stage "
                                     "continues"), RuntimeWarning, stacklevel=3)
                _forget_active_run(self._m)
        if self._fallback is not None:
            self._fallback.close()

    def log_params(self, params):
        clean = {k: redact(json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in params.items()}
        items = list(clean.items())
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self._guard("log_params", dict(items[i:i + 100]))

    def log_metrics(self, metrics, step=None):
        self._guard("log_metrics", {_metric_name(k): float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path, artifact_path=None):
        self._guard("log_artifact", str(path), artifact_path=artifact_path)

    def set_tags(self, tags):
        self._guard("set_tags", {k: redact(str(v)) for k, v in tags.items()})

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


def _open_run(mlflow, stage: str, experiment: str, tags: Optional[Mapping[str, Any]], run_name: Optional[str]):
    exp_id = _experiment_id(mlflow, experiment)
    active = mlflow.active_run()
    parent = active.info.run_id if active is not None else os.environ.get("AER_PARENT_RUN_ID")
    all_tags = {"stage": stage, "git_sha": git_sha(), "dvc_stage": os.environ.get("DVC_STAGE", stage),
                **(tags or {})}
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    # Not `with start_run(...)`: its exit would end the run a second time, which ends the parent too.
    return mlflow.start_run(experiment_id=exp_id, run_name=run_name or stage, nested=active is not None,
                            tags={k: redact(str(v)) for k, v in all_tags.items()})


@contextlib.contextmanager
def _local_run(stage: str, uri: str, why: str) -> Iterator[Tracker]:
    tracker = LocalTracker(FALLBACK_DIR, stage)
    warnings.warn(redact(f"MLflow server {uri} is {why}; stage '{stage}' logs to {tracker.dir / 'events.jsonl'} "
                         "and continues"), RuntimeWarning, stacklevel=4)
    try:
        yield tracker
    finally:
        tracker.close()


@contextlib.contextmanager
def start_run(stage: str, *, experiment: str = "aer-pipeline", uri: Optional[str] = None,
              enabled: bool = True, tags: Optional[Mapping[str, Any]] = None,
              run_name: Optional[str] = None) -> Iterator[Tracker]:
    """Open a tracked run for `stage`; nested under $AER_PARENT_RUN_ID when set.  Disabled: a NullTracker."""
    if not enabled:
        yield NullTracker()
        return
    uri = resolve_uri(uri)
    short_http_timeouts()
    if not _server_reachable(uri):
        with _local_run(stage, uri, "unreachable") as tracker:
            yield tracker
        return
    import mlflow

    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        mlflow.set_tracking_uri(uri)  # also writes $MLFLOW_TRACKING_URI; restored below
        try:
            run, why = _open_run(mlflow, stage, experiment, tags, run_name), ""
        except Exception as exc:  # answered /health but fails the API: same as unreachable
            run, why = None, f"unreachable ({type(exc).__name__}: {exc})"
        if run is None:
            with _local_run(stage, uri, why) as tracker:
                yield tracker
            return
        tracker, status = MlflowTracker(mlflow, run, stage=stage, uri=uri), "FINISHED"
        try:
            yield tracker
        except BaseException:
            status = "FAILED"
            raise
        finally:
            tracker.end(status)
    finally:
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


def _forget_active_run(mlflow) -> None:
    """Drop the ended run from MLflow's active-run stack without a server call (after an outage).  Uses
    MLflow's private stack; if that moved, fall back to `end_run` (short timeouts, errors swallowed)."""
    try:
        from mlflow.environment_variables import MLFLOW_RUN_ID
        from mlflow.tracking import fluent

        stack = fluent._active_run_stack.get()
        if stack:
            stack.pop()
        MLFLOW_RUN_ID.unset()
    except Exception:
        with contextlib.suppress(Exception):
            mlflow.end_run()


def open_parent(name: str, *, experiment: str = "aer-pipeline", uri: Optional[str] = None) -> Optional[str]:
    """Start a parent run (left open) and return its id; None when the server is unreachable."""
    uri = resolve_uri(uri)
    short_http_timeouts()
    if not _server_reachable(uri):
        warnings.warn(redact(f"MLflow server {uri} is unreachable; no parent run"), RuntimeWarning, stacklevel=2)
        return None
    import mlflow

    client = mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    try:
        run = client.create_run(_experiment_id(mlflow, experiment), run_name=name,
                                tags={"git_sha": git_sha(), "kind": "pipeline"})
    except Exception as exc:  # tracking never stops the pipeline
        warnings.warn(redact(f"MLflow server {uri} failed ({type(exc).__name__}: {exc}); no parent run"),
                      RuntimeWarning, stacklevel=2)
        return None
    return run.info.run_id


def close_parent(run_id: str, status: str = "FINISHED", uri: Optional[str] = None) -> None:
    """End a parent run; a server that died meanwhile is warned about, never raised (the exit code stays)."""
    import mlflow

    short_http_timeouts()
    try:
        mlflow.MlflowClient(resolve_uri(uri)).set_terminated(run_id, status=status)
    except Exception as exc:
        warnings.warn(redact(f"MLflow server {resolve_uri(uri)} failed while closing parent run {run_id} "
                             f"({type(exc).__name__}: {exc})"), RuntimeWarning, stacklevel=2)


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
