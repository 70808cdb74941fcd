"""DVC stage `train`: GRPO with the configured entropy method (`train.method`) -> models/trained.

Launch: `python -m pipeline.stages.train` (one process), `torchrun --nproc_per_node N -m
pipeline.stages.train` or `deepspeed --hostfile H -m pipeline.stages.train` (several ranks; each
generates for its share of every global mini-batch).  `train.resume: auto` continues from the newest
complete checkpoint in `<train.out_dir>/checkpoints`.  The session itself lives in `pipeline.train`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from pipeline.config import Params
from pipeline.stages.common import main_guard, numeric_metrics, stage_run
from pipeline.tracking import sample_rows, start_run
from pipeline.train.distributed import init, is_main
from pipeline.train.loop import TrainingAborted, train
from pipeline.train.session import build_context, finish, resume

# The params keys this stage reads (a key covers its sub-keys); dvc.yaml lists exactly these, --help shows them.
READS = ("seed", "data.out_dir", "difficulty.out", "model.name_or_path", "model.dtype", "model.prompt_template",
         "model.use_chat_template", "model.attn_implementation", "model.stop_tokens", "train", "entropy", "rollout")


def run(params: Params) -> dict:
    rank, world = init()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    # ranks > 0 log locally: one MLflow run per training, not one per rank
    tracked = stage_run("train", params) if rank == 0 else start_run(f"train-rank{rank}", enabled=False)
    with tracked as tracker:
        ctx = build_context(params, tracker, rank, world)
        resume(ctx)
        try:
            last = train(ctx)
        except TrainingAborted as exc:
            print(f"error: train[{params.train.method}]: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        metrics = finish(ctx, tracker)
        if is_main():
            tracker.log_metrics(numeric_metrics({"final": metrics}))
            if Path(ctx.samples_path).exists():
                tracker.log_table(sample_rows(ctx.samples_path), "samples/train_completions.json")
            tracker.log_model(Path(params.train.out_dir) / "final", "final_model")  # a copy, or a DVC reference
    if is_main():
        print(f"train[{params.train.method}]: step {params.train.steps}, reward {last.get('reward_mean', 0):.3f}, "
              f"entropy {last.get('entropy', float('nan')):.3f}, coef {last.get('reg/coef', 0)}")
    return metrics


if __name__ == "__main__":
    main_guard(run, "train")
