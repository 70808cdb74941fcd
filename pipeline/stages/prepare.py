"""DVC stage `prepare`: build data/prepared/{train,eval,bad_rows}.jsonl and metrics/prepare.json."""
from __future__ import annotations

import sys
from pathlib import Path

from pipeline.config import Params
from pipeline.data.prepare import prepare
from pipeline.data.sources import SourceError
from pipeline.stages.common import main_guard, record_metrics, stage_run
from pipeline.utils.io import write_jsonl

# The params keys this stage reads (a key covers its sub-keys); dvc.yaml lists exactly these, --help shows them.
READS = ("seed", "data")
METRICS = Path("metrics/prepare.json")


def run(params: Params) -> dict:
    out = Path(params.data.out_dir)
    with stage_run("prepare", params) as tracker:
        try:
            result = prepare(params.data, params.seed)
        except SourceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        write_jsonl(out / "train.jsonl", (p.to_row() for p in result.train))
        write_jsonl(out / "eval.jsonl", (p.to_row() for p in result.eval))
        write_jsonl(out / "bad_rows.jsonl", (b.to_row() for b in result.bad_rows))
        record_metrics(tracker, METRICS, result.metrics)
        tracker.log_artifact(out / "bad_rows.jsonl")
    for b in result.bad_rows[:20]:
        print(f"bad row: {b.file}:{b.row}: {b.reason}", file=sys.stderr)
    print(f"prepare: {result.metrics['n_train']} train, {result.metrics['n_eval']} eval, "
          f"{result.metrics['n_bad_rows']} bad rows, {result.metrics['n_duplicates']} duplicates, "
          f"{result.metrics['n_contaminated']} contaminated")
    return result.metrics


if __name__ == "__main__":
    main_guard(run, "prepare")
