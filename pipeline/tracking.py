"""Experiment tracking behind a small interface, with MLflow as the implementation.

`start_run(stage, ...)` yields a `Tracker` with `log_params`, `log_metrics(step=...)`, `log_artifact`,
`set_tags`, `log_input` (a dataset by path or hub id, md5 as digest), `log_table` (sampled completions)
and `log_model` (a copy, or for a large model a reference: path, size and DVC's per-file md5).  The
default store is a sqlite file at the workspace root (`mlflow.db`, gitignored; the root is $DVC_ROOT
under DVC, so queued experiments in temp copies log to the same store) so that
`mlflow ui --backend-store-uri sqlite:///mlflow.db` browses it; `MLFLOW_TRACKING_URI` or `tracking.uri`
points runs at a shared server.  Runs are named `<stage>-<method>-s<seed>[-<DVC experiment>]` and
tagged with method, seed, profile and experiment (`run_name`, `run_tags`).  A run opened inside another
is nested under it, and a parent run id in `AER_PARENT_RUN_ID` nests stage runs (other processes) under a
pipeline run; `open_parent` / `close_parent` give that parent the config and the headline metrics.
Entropy and its target are drawn into one chart artifact (MLflow's default view gives each metric its own
chart) every `chart_every` steps and at the end.  The sqlite store keeps absolute artifact paths, so a
moved or copied clone rewrites them to its own `mlartifacts/` when it opens a run (`relocate_store`).
If the server cannot be reached the run goes on with a `LocalTracker` that writes the same calls to
`.tracking_fallback/` and warns; tracking never stops training.

Outages: MLflow's HTTP defaults (120 s timeout, 7 retries with backoff: ~255 s per call) are lowered for
this process to a 5 s timeout and no retries, unless set explicitly.  The first failing call marks the run
dead: one warning says where the rest goes, every later call (end of run included) goes to the local log
without touching the server, and nothing a tracker does changes the stage's exit code.  Credentials in a
tracking URI (`http://user:pass@host`) are redacted from every warning, param and tag.
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

from pipeline.tracking_support import (DEFAULT_ARTIFACTS, DEFAULT_DB, FALLBACK_DIR, MODEL_COPY_LIMIT_MB,  # noqa: F401
                                       LocalTracker, NullTracker, Tracker, _load_params, chart_figure, display_path,
                                       file_md5, git_sha, headline_metrics, redact, relocate_store, run_name,
                                       run_tags, sample_rows, short_http_timeouts, workspace_root)

# Series drawn together: MLflow's default chart view gives every metric key its own chart.
CHARTS = {"entropy_vs_target": (("entropy", "reg/target"), "token entropy (nats)")}


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
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def default_uri() -> str:
    return f"sqlite:///{workspace_root() / DEFAULT_DB}"


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
        self.title = run.info.run_name
        self.chart_every = 0
        self._series: dict[str, list[tuple[int, float]]] = {}

    def _local(self) -> LocalTracker:
        if self._fallback is None:
            self._fallback = LocalTracker(FALLBACK_DIR, self._stage)
        return self._fallback

    def _remote(self, name: str, call) -> bool:
        """Run `call` against the server unless the run is dead; False (and the run dead, warned once) when
        the server fails, so the caller writes to the local log instead."""
        if self.dead:
            return False
        try:
            call()
            return True
        except Exception as exc:  # a tracking outage must not stop (or stall) the stage
            self.dead = True
            warnings.warn(redact(
                f"MLflow server {self._uri} failed during {name} ({type(exc).__name__}: {exc}); no further "
                f"calls go to it for this run: params, metrics and artifacts from here on are written to "
                f"{self._local().dir / 'events.jsonl'} and the stage continues"), RuntimeWarning, stacklevel=4)
            return False

    def _guard(self, name: str, *args, **kwargs) -> None:
        if self._remote(name, lambda: getattr(self._m, name)(*args, **kwargs)):
            return
        local = self._local()
        {"log_params": local.log_params, "log_metrics": local.log_metrics, "log_artifact": local.log_artifact,
         "set_tags": local.set_tags, "log_artifacts": local.log_dir}[name](*args, **kwargs)

    def end(self, status: str) -> None:
        """End the MLflow run; after an outage only the local bookkeeping is cleared (no remote call)."""
        self.draw_charts()
        if not self._remote("end_run", lambda: self._m.end_run(status=status)):
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
        self.observe_charts(metrics, step)

    def log_artifact(self, path, artifact_path=None):
        self._guard("log_artifact", str(path), artifact_path=artifact_path)

    def set_tags(self, tags):
        self._guard("set_tags", {k: redact(str(v)) for k, v in tags.items()})

    def log_dir(self, path, artifact_path=None):
        self._guard("log_artifacts", str(path), artifact_path=artifact_path)

    def log_input(self, source, name, context):
        def call():
            dataset, tags = _dataset(source, name)
            self._m.log_input(dataset, context=context, tags=tags)
        if not self._remote("log_input", call):
            self._local().log_input(source, name, context)

    def log_table(self, rows, artifact_file):
        columns = {key: [row.get(key) for row in rows] for key in dict.fromkeys(k for row in rows for k in row)}
        if not self._remote("log_table", lambda: self._m.log_table(columns, artifact_file)):
            self._local().log_table(rows, artifact_file)

    def observe_charts(self, metrics: Mapping[str, float], step: Optional[int]) -> None:
        """Keep the series of CHARTS and redraw them every `chart_every` steps."""
        if step is None or not self.chart_every:
            return
        hit = False
        for keys, _ in CHARTS.values():
            for key in keys:
                if key in metrics:
                    self._series.setdefault(key, []).append((step, float(metrics[key])))
                    hit = True
        if hit and (step + 1) % self.chart_every == 0:
            self.draw_charts()

    def draw_charts(self) -> None:
        """One PNG per CHARTS entry whose series all have points, under `charts/` in the run."""
        for name, (keys, ylabel) in CHARTS.items():
            if all(self._series.get(k) for k in keys):
                import matplotlib.pyplot as plt

                fig = chart_figure(self._series, keys, ylabel, self.title)
                try:
                    self._remote("log_figure", lambda: self._m.log_figure(fig, f"charts/{name}.png"))
                finally:
                    plt.close(fig)


def _dataset(source: str | os.PathLike, name: str):
    """A metadata-only MLflow dataset: a local file (md5 as digest, row count) or a hub id."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import HuggingFaceDatasetSource, LocalArtifactDatasetSource

    path = Path(source)
    if not path.is_file():
        return MetaDataset(HuggingFaceDatasetSource(str(source)), name=name), {"source": str(source)}
    with open(path, "rb") as fh:
        rows = sum(1 for line in fh if line.strip())
    digest = file_md5(path)
    tags = {"rows": str(rows), "md5": digest, "path": display_path(path)}
    return MetaDataset(LocalArtifactDatasetSource(display_path(path)), name=name, digest=digest), tags


def _relocate_if_default(uri: str) -> None:
    """The workspace's own store follows the workspace when it is moved or copied (see relocate_store)."""
    db = workspace_root() / DEFAULT_DB
    if uri != default_uri() or not db.is_file():
        return
    moved = {old: n for old, n in relocate_store(db, workspace_root()).items() if n}
    if moved:
        warnings.warn(f"{db}: artifact paths pointed into {', '.join(moved)} (the store was moved or copied); "
                      f"they now point into {workspace_root()}", RuntimeWarning, stacklevel=3)


def _experiment_id(client, name: str) -> str:
    """The experiment's id, created on first use; a sqlite store keeps artifacts beside its database."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    uri = client.tracking_uri
    if uri.startswith("sqlite:"):
        location = (Path(uri[len("sqlite:///"):]).resolve().parent / DEFAULT_ARTIFACTS).as_uri()
    return client.create_experiment(name, artifact_location=location)


def _open_run(mlflow, stage: str, experiment: str, tags: Optional[Mapping[str, Any]], run_name: Optional[str],
              system_metrics: bool):
    exp_id = _experiment_id(mlflow.MlflowClient(mlflow.get_tracking_uri()), experiment)
    active = mlflow.active_run()
    parent = active.info.run_id if active is not None else os.environ.get("AER_PARENT_RUN_ID")
    all_tags = {"stage": stage, "git_sha": git_sha(), "dvc_stage": os.environ.get("DVC_STAGE", stage),
                **(tags or {})}
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    # Not `with start_run(...)`: its exit would end the run a second time, which ends the parent too.
    return mlflow.start_run(experiment_id=exp_id, run_name=run_name or stage, nested=active is not None,
                            tags={k: redact(str(v)) for k, v in all_tags.items()}, log_system_metrics=system_metrics)


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
              enabled: bool = True, tags: Optional[Mapping[str, Any]] = None, run_name: Optional[str] = None,
              system_metrics: bool = False, chart_every: int = 0) -> Iterator[Tracker]:
    """Open a tracked run for `stage`; nested under $AER_PARENT_RUN_ID when set; disabled: a NullTracker.
    `system_metrics` samples CPU, memory (and GPU when pynvml is installed) into `system/*`; `chart_every`
    > 0 redraws CHARTS."""
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
        _relocate_if_default(uri)
        mlflow.set_tracking_uri(uri)  # also writes $MLFLOW_TRACKING_URI; restored below
        try:
            run, why = _open_run(mlflow, stage, experiment, tags, run_name, system_metrics), ""
        except Exception as exc:  # answered /health but fails the API: same as unreachable
            run, why = None, f"unreachable ({type(exc).__name__}: {exc})"
        if run is None:
            with _local_run(stage, uri, why) as tracker:
                yield tracker
            return
        tracker, status = MlflowTracker(mlflow, run, stage=stage, uri=uri), "FINISHED"
        tracker.chart_every = chart_every
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


def _client(params) -> tuple[Any, str]:
    import mlflow

    uri = resolve_uri(params.tracking.uri if params is not None else None)
    _relocate_if_default(uri)
    return mlflow.MlflowClient(uri), uri


def open_parent(name: str, *, params_path: Optional[str] = None) -> Optional[str]:
    """Start a parent run (left open) in params' `tracking.experiment` at `tracking.uri`, named and tagged
    like the stage runs, with the flattened config as params.  Returns its id; None when tracking is off or
    the server is unreachable or fails (warned, never raised)."""
    params = _load_params(params_path)
    if params is not None and not params.tracking.enabled:
        return None
    uri = resolve_uri(params.tracking.uri if params is not None else None)
    short_http_timeouts()
    if not _server_reachable(uri):
        warnings.warn(redact(f"MLflow server {uri} is unreachable; no parent run"), RuntimeWarning, stacklevel=2)
        return None
    try:
        return _create_parent(name, params)
    except Exception as exc:  # tracking never stops the pipeline
        warnings.warn(redact(f"MLflow server {uri} failed ({type(exc).__name__}: {exc}); no parent run"),
                      RuntimeWarning, stacklevel=2)
        return None


def _create_parent(name: str, params) -> str:
    from mlflow.entities import Param

    from pipeline.config import flatten, to_dict

    client, _ = _client(params)
    tags = {"git_sha": git_sha(), "kind": "pipeline"}
    if params is None:
        run = client.create_run(_experiment_id(client, "aer-pipeline"), run_name=name, tags=tags)
        return run.info.run_id
    tags.update(run_tags(params.train.method, params.seed, params.profile))
    run = client.create_run(_experiment_id(client, params.tracking.experiment),
                            run_name=run_name(name, params.train.method, params.seed), tags=tags)
    items = [Param(k, redact(json.dumps(v) if isinstance(v, (list, dict)) else str(v)))
             for k, v in flatten(to_dict(params)).items()]
    for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    return run.info.run_id


def close_parent(run_id: str, status: str = "FINISHED", *, params_path: Optional[str] = None) -> None:
    """End a parent run; a finished one first gets the headline numbers (as metrics) and labels such as
    `headline.method` (as tags) that its stages wrote (`headline_metrics`).  A server that died meanwhile
    is warned about, never raised (the exit code stays)."""
    params = _load_params(params_path)
    short_http_timeouts()
    try:
        _finish_parent(run_id, status, params)
    except Exception as exc:
        warnings.warn(redact(f"MLflow server failed while closing parent run {run_id} ({type(exc).__name__}: "
                             f"{exc})"), RuntimeWarning, stacklevel=2)


def _finish_parent(run_id: str, status: str, params) -> None:
    from mlflow.entities import Metric, RunTag

    client, _ = _client(params)
    if status == "FINISHED":
        metrics, labels = headline_metrics(params)
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(_metric_name(k), v, now, 0) for k, v in metrics.items()],
                         tags=[RunTag(k, v) for k, v in labels.items()])
    client.set_terminated(run_id, status=status)


def run_url(run_id: str, *, params_path: Optional[str] = None) -> str:
    """The run's page in the MLflow UI: the tracking server itself, or for a sqlite store the UI of
    `make mlflow-ui` ($AER_MLFLOW_UI, default http://127.0.0.1:5000)."""
    client, uri = _client(_load_params(params_path))
    base = uri if uri.startswith(("http://", "https://")) else os.environ.get("AER_MLFLOW_UI", "http://127.0.0.1:5000")
    exp_id = client.get_run(run_id).info.experiment_id
    return f"{base.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"


USAGE = ("usage: python -m pipeline.tracking (wrap NAME -- CMD... | open NAME | close RUN_ID [STATUS] | url RUN_ID "
         "| relocate)")


def main(argv: Optional[list[str]] = None) -> int:
    """`wrap NAME -- CMD...`: run CMD with its stage runs nested under a new parent run, which then gets the
    headline metrics; `open NAME` prints a parent run id; `close RUN_ID [STATUS]` ends it; `url RUN_ID`
    prints its UI address; `relocate` points the workspace store's artifact paths at this clone."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["open"] and len(args) == 2:
        print(open_parent(args[1]) or "")
        return 0
    if args[:1] == ["close"] and len(args) in (2, 3):
        close_parent(args[1], args[2] if len(args) == 3 else "FINISHED")
        return 0
    if args[:1] == ["url"] and len(args) == 2:
        print(run_url(args[1]))
        return 0
    if args == ["relocate"]:
        db = workspace_root() / DEFAULT_DB
        print(json.dumps(relocate_store(db, workspace_root()) if db.is_file() else {}))
        return 0
    if args[:1] == ["wrap"] and "--" in args:
        name, cmd = args[1], args[args.index("--") + 1:]
        run_id = open_parent(name)
        env = {**os.environ, **({"AER_PARENT_RUN_ID": run_id} if run_id else {})}
        rc = subprocess.run(cmd, env=env).returncode
        if run_id:
            close_parent(run_id, "FINISHED" if rc == 0 else "FAILED")
        return rc
    print(USAGE)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
