"""Launched by torchrun (2 ranks, gloo) in test_split_invariance.py: each rank takes its half of the saved
batch, computes one optimizer step for every method, averages gradients over ranks as DeepSpeed does, and
rank 0 saves the losses and gradients."""
from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from pipeline.models.loading import load_policy
from pipeline.train.batch import RolloutBatch
from pipeline.train.distributed import init
from pipeline.train.update import comm
from pipeline.rl import REGISTRY
from tests.train.split_case import step_gradients


def main(model_dir: str, batch_path: str, out_path: str, agg_mode: str) -> None:
    rank, world = init()
    model, tokenizer = load_policy(model_dir)
    saved = torch.load(batch_path, weights_only=True)
    olds = saved.pop("olds")
    batch = RolloutBatch(**saved)
    half = len(batch) // world
    idx = range(rank * half, (rank + 1) * half)
    results = {}
    for name in REGISTRY:
        loss, grads = step_gradients(model, batch.select(idx), [olds[i] for i in idx], name, 8, world, comm(),
                                     tokenizer.pad_token_id, agg_mode)
        for g in grads.values():
            dist.all_reduce(g)
            g /= world
        results[name] = {"loss": loss, "grads": grads}
    if rank == 0:
        torch.save(results, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:5])
