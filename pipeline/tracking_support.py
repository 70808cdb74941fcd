"""What the tracker does that needs no MLflow: the `Tracker` interface and its local and null
implementations, credential redaction and short HTTP timeouts, run names and tags, the parent run's
headline metrics, references to large models, sampled table rows, overlay charts, and the relocation of a
sqlite store.

Split from `pipeline/tracking.py` (the one library module allowed to import MLflow) so that module stays
an adapter.  `relocate_store` edits MLflow's sqlite schema directly (experiments.artifact_location,
runs.artifact_uri, logged_models.artifact_location), because MLflow has no API to change an artifact
location; it is tested against the installed MLflow's schema.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

FALLBACK_DIR = ".tracking_fallback"
# Per-process defaults for MLflow's HTTP client (read at every request); explicit settings win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")
# A model directory up to this size is copied into the run; a larger one (GPU models are GBs, and every
# run would copy them again) is logged as a reference to the DVC-tracked files instead.
MODEL_COPY_LIMIT_MB = 200
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
ARTIFACT_DIRS = (DEFAULT_ARTIFACTS, "mlruns")  # ours, and MLflow's own default for the Default experiment
HEADLINE_NAME = "headline.json"  # written by the evaluate stage beside eval.metrics_file
MAX_TABLE_ROWS = 500


def workspace_root() -> Path:
    """The DVC workspace: $DVC_ROOT, which DVC sets for stage commands (for a queued experiment it is the
    parent repository, not the temp copy the stage runs in), else the current directory."""
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


def run_name(stage: str, method: str, seed: int) -> str:
    """`<stage>-<method>-s<seed>`, plus `-<name>` inside a DVC experiment ($DVC_EXP_NAME)."""
    exp = os.environ.get("DVC_EXP_NAME")
    return f"{stage}-{method}-s{seed}" + (f"-{exp}" if exp else "")


def run_tags(method: str, seed: int, profile: str) -> dict[str, str]:
    """Tags to filter and group runs by in the MLflow UI; `experiment` is the DVC experiment name."""
    return {"method": str(method), "seed": str(seed), "profile": str(profile),
            "experiment": os.environ.get("DVC_EXP_NAME") or "workspace"}


def file_md5(path: str | os.PathLike) -> str:
    """md5 of a file's bytes: DVC's per-file hash, so also the file's address in a DVC cache or remote."""
    from pipeline.utils.io import file_digest

    return file_digest(path, "md5")


def display_path(path: Path) -> str:
    """Relative to the workspace when inside it, so a moved clone's records still resolve."""
    try:
        return path.resolve().relative_to(workspace_root()).as_posix()
    except ValueError:
        return str(path.resolve())


def model_reference(path: str | os.PathLike, git_sha: str = "unknown") -> dict:
    """What identifies a DVC-tracked model directory without copying it: path, bytes, per-file md5."""
    root = Path(path)
    files = {p.relative_to(root).as_posix(): {"md5": file_md5(p), "size": p.stat().st_size}
             for p in sorted(root.rglob("*")) if p.is_file()}
    return {"path": display_path(root), "bytes": sum(f["size"] for f in files.values()), "files": files,
            "git_sha": git_sha,
            "restore": "check out git_sha and `dvc checkout` (or `dvc pull`) the output holding `path`; "
                       "each file is also in the DVC cache at files/md5/<md5[:2]>/<md5[2:]>"}


def sample_rows(path: str | os.PathLike, max_rows: int = MAX_TABLE_ROWS) -> list[dict]:
    """Up to `max_rows` rows of a jsonl file, evenly spaced (a long run's samples span every step)."""
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    stride = max(1, -(-len(rows) // max_rows))
    return rows[::stride][:max_rows]


def chart_figure(series: dict, keys: tuple[str, ...], ylabel: str, title: str):
    from pipeline.utils import plots

    fig, ax = plots.figure((6.5, 3.4))
    for i, key in enumerate(keys):
        steps, values = zip(*series[key])
        ax.plot(steps, values, label=key, linestyle="-" if i == 0 else "--")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _store_root(location: Optional[str]) -> Optional[str]:
    """'/a/b/mlartifacts', '/a/b/mlruns/1' or 'file:///a/b/mlartifacts' -> '/a/b'; else None."""
    from urllib.parse import unquote

    if not location:
        return None
    path = unquote(location[len("file://"):]) if location.startswith("file://") else location
    for name in ARTIFACT_DIRS:
        head, sep, _ = (path.rstrip("/") + "/").rpartition(f"/{name}/")
        if sep:
            return head
    return None


def relocate_store(db: str | os.PathLike, root: str | os.PathLike) -> dict[str, int]:
    """Point a sqlite store's artifact locations that lie under another directory's `mlartifacts/` or
    `mlruns/` (the clone this store was moved or copied from) at the same folders under `root`.

    MLflow keeps absolute artifact paths in the experiments, runs and logged_models tables and has no API
    to change them, so this rewrites those three columns with SQL.  Returns {old root: rows changed}."""
    import sqlite3

    root = str(Path(root).resolve())
    con = sqlite3.connect(str(db))
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return {}
        olds = {_store_root(loc) for (loc,) in con.execute("SELECT artifact_location FROM experiments")}
        changed = {}
        with con:
            for old in sorted(o for o in olds if o and o != root):
                changed[old] = 0
                for table, col in (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                                   ("logged_models", "artifact_location")):
                    if table not in tables:
                        continue
                    for before, after in ((old, root), (Path(old).as_uri(), Path(root).as_uri())):
                        changed[old] += con.execute(
                            f"UPDATE {table} SET {col} = ? || substr({col}, ?) WHERE substr({col}, 1, ?) = ?",
                            (after, len(before) + 1, len(before) + 1, before + "/")).rowcount
        return changed
    finally:
        con.close()


def headline_metrics(params=None) -> tuple[dict[str, float], dict[str, str]]:
    """A parent run's summary: the numbers and labels of the evaluate stage's headline.json (beside
    `eval.metrics_file`) when present, else of the eval and train metrics files (prefixed `eval.` /
    `train.`).  Keys are flattened with dots, e.g. `headline.synthetic.avg@n`, `headline.method`."""
    import math

    from pipeline.config import flatten

    root = workspace_root()
    eval_file = root / (params.eval.metrics_file if params is not None else "metrics/eval.json")
    train_file = root / (params.train.metrics_file if params is not None else "metrics/train.json")
    headline = eval_file.with_name(HEADLINE_NAME)
    sources = {"": headline} if headline.is_file() else {"eval.": eval_file, "train.": train_file}
    metrics, labels = {}, {}
    for prefix, path in sources.items():
        if not path.is_file():
            continue
        for key, value in flatten(json.loads(path.read_text(encoding="utf-8"))).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                metrics[prefix + key] = float(value)
            elif isinstance(value, (str, bool)):
                labels[prefix + key] = str(value)
    return metrics, labels


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



def _load_params(path: Optional[str] = None):
    """params.yaml (or $AER_PARAMS) for the parent run; None, with a warning, when it does not load (the
    wrapped stages then fail with the full error, so the parent must not hide it)."""
    from pipeline.config import ConfigError, load_params

    try:
        return load_params(path)
    except ConfigError as exc:
        warnings.warn(f"parent run without config: {exc}", RuntimeWarning, stacklevel=3)
        return None


class Tracker:
    """Interface; the methods swallow nothing, so implementations decide how to degrade."""

    run_id: Optional[str] = None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None: ...
    def log_artifact(self, path: str | os.PathLike, artifact_path: Optional[str] = None) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def log_dir(self, path: str | os.PathLike, artifact_path: Optional[str] = None) -> None: ...
    def log_input(self, source: str | os.PathLike, name: str, context: str) -> None: ...
    def log_table(self, rows: list[dict], artifact_file: str) -> None: ...

    def log_model(self, path: str | os.PathLike, artifact_path: str) -> None:
        """Copy a model directory into the run, or, above MODEL_COPY_LIMIT_MB, log `<artifact_path>.ref.json`:
        the path, total size and each file's md5 (DVC's content hash: the file's address in the DVC cache
        and remotes) instead of a multi-GB copy per run."""
        path = Path(path)
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if size <= MODEL_COPY_LIMIT_MB * 2**20:
            self.log_dir(path, artifact_path)
            return
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            ref = Path(tmp) / f"{artifact_path.replace('/', '_')}.ref.json"
            ref.write_text(json.dumps(model_reference(path, git_sha()), indent=1))
            self.log_artifact(ref)


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

    def log_input(self, source, name, context):
        self._write("input", source=str(source), name=name, context=context)

    def log_table(self, rows, artifact_file):
        self._write("table", artifact_file=artifact_file, rows=rows)

    def close(self) -> None:
        self._fh.close()


class NullTracker(Tracker):
    """`tracking.enabled: false`: every call is accepted and nothing is written anywhere."""

    def log_model(self, path, artifact_path):
        pass

    def close(self) -> None:
        pass


