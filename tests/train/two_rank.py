"""Launched by torchrun in test_distributed_and_resume.py: train, then report each rank's weight checksum
(and save rank 0's full weights beside the report, to compare ZeRO stages)."""
from __future__ import annotations

import hashlib
import json
import sys

import torch
import torch.distributed as dist

from pipeline.config import load_params
from pipeline.tracking import LocalTracker
from pipeline.train.batch import PromptSampler, shard
from pipeline.train.distributed import init
from pipeline.train.engine import full_state_dict
from pipeline.train.loop import train
from pipeline.train.session import build_context, resume


def main(params_path: str, out_path: str) -> None:
    rank, world = init()
    params = load_params(params_path)
    ctx = build_context(params, LocalTracker(".tracking_fallback", f"rank{rank}"), rank, world)
    resume(ctx)
    last = train(ctx)
    digest = hashlib.sha256()
    state = full_state_dict(ctx.engine, ctx.settings.zero_stage)
    for name, t in sorted(state.items()):
        digest.update(name.encode())
        digest.update(t.detach().to(torch.float64).numpy().tobytes())
    report = [None] * world
    first = shard(PromptSampler(ctx.sampler.problems, params.seed).next(params.train.prompts_per_step), rank, world,
                  ctx.n_minibatches)
    dist.all_gather_object(report, {"rank": rank, "sha": digest.hexdigest(), "reward_mean": last["reward_mean"],
                                    "samples": last["samples"], "cursor": ctx.sampler.cursor,
                                    "first_shard": [p.id for p in first]})
    if rank == 0:
        torch.save(state, out_path + ".pt")
        with open(out_path, "w") as fh:
            json.dump(report, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
