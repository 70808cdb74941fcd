"""What every stage entry point shares: params loading, the tracked run, and uniform error output."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from pipeline import tracking
from pipeline.config import ConfigError, Params, flatten, load_params, to_dict


@contextlib.contextmanager
def stage_run(stage: str, params: Params) -> Iterator[tracking.Tracker]:
    """A tracked run for `stage` with params: the flattened config, the git SHA and, under `dvc repro`, the
    DVC stage hash (`tracking.dvc_stage_hash`)."""
    with tracking.start_run(stage, experiment=params.tracking.experiment, uri=params.tracking.uri,
                            enabled=params.tracking.enabled) as tracker:
        identity = {"git_sha": tracking.git_sha(), "dvc_stage_hash": tracking.dvc_stage_hash()}
        tracker.log_params({**flatten(to_dict(params)), **{k: v for k, v in identity.items() if v}})
        yield tracker


def record_metrics(tracker: tracking.Tracker, path, metrics: dict) -> None:
    """Write a stage's metrics file atomically and log its numbers and the file to the tracker."""
    from pipeline.utils.io import write_json

    write_json(path, metrics)
    tracker.log_metrics(numeric_metrics(metrics))
    tracker.log_artifact(path)


def numeric_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested metrics dict, flattened with dots (for the tracker)."""
    out = {}
    for key, value in flatten(metrics, prefix).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key.replace("/", "_")] = float(value)
    return out


def parse_overrides(argv: list[str]) -> dict:
    """`--set key=value` pairs (values parsed as YAML, so lists and numbers work)."""
    import yaml

    out, it = {}, iter(argv)
    for arg in it:
        if arg != "--set":
            raise ConfigError(f"command line: unexpected argument {arg!r}. Fix: use --set key=value")
        key, sep, value = next(it, "").partition("=")
        if not sep:
            raise ConfigError(f"command line: --set {key!r} has no '='. Fix: use --set key=value")
        out[key] = yaml.safe_load(value)
    return out


def main_guard(fn) -> None:
    """Run a stage main; config and input errors print one clear line and exit 2 (no traceback)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        fn(load_params(overrides=parse_overrides(sys.argv[1:])))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def load_problems(path) -> list:
    """Prepared problems from a jsonl file; a malformed row names the file and line."""
    from pipeline.data.schema import Problem
    from pipeline.utils.io import InputError, scan_jsonl

    problems = []
    for lineno, row, problem in scan_jsonl(path):
        if problem is not None:
            raise InputError(f"{path}:{lineno}: {problem}")
        try:
            problems.append(Problem.from_row(row, f"{path}:{lineno}"))
        except (TypeError, ValueError) as exc:
            raise InputError(str(exc)) from None
    return problems


def engine_from_params(params: Params, model, tokenizer, model_path: str | None = None):
    """The rollout engine that params.rollout selects, for an in-memory model (HF) or a saved one (vLLM)."""
    from pipeline.rollout import make_engine

    r = params.rollout
    return make_engine(r.backend, model=model, tokenizer=tokenizer, model_path=model_path or params.model.name_or_path,
                       dtype=params.model.dtype, seed=params.seed, batch_size=r.batch_size, kv_cache_gb=r.kv_cache_gb,
                       gpu_memory_utilization=r.gpu_memory_utilization, tensor_parallel_size=r.tensor_parallel_size,
                       enforce_eager=r.enforce_eager)
