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
    """A tracked run for `stage` with the flattened params logged."""
    with tracking.start_run(stage, experiment=params.tracking.experiment, uri=params.tracking.uri,
                            enabled=params.tracking.enabled) as tracker:
        tracker.log_params(flatten(to_dict(params)))
        yield tracker


def numeric_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested metrics dict, flattened with dots (for the tracker)."""
    out = {}
    for key, value in flatten(metrics, prefix).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key.replace("/", "_")] = float(value)
    return out


def main_guard(fn) -> None:
    """Run a stage main; config and input errors print one clear line and exit 2 (no traceback)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        fn(load_params())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
