"""Launched by torchrun in test_engine_config.py: `engine.build` at ZeRO-3 on two ranks; reports what each rank
holds after loading and whether the consolidated export equals the saved checkpoint."""
from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

from pipeline.config import load_params
from pipeline.train.distributed import init
from pipeline.train.engine import build, full_state_dict


def main(params_path: str, model_dir: str, out_path: str) -> None:
    from safetensors.torch import load_file

    rank, world = init()
    params = load_params(params_path)
    engine, _ = build(params.train, model_dir, "float32", world_size=world)
    model = engine.module.policy
    whole = sum(p.ds_numel for p in model.parameters())
    held = sum(p.ds_tensor.numel() for p in model.parameters())
    state = full_state_dict(engine, 3)
    saved = load_file(f"{model_dir}/model.safetensors")
    same = all(torch.equal(state[k], v) for k, v in saved.items())
    report = [None] * world
    dist.all_gather_object(report, {"rank": rank, "held": held, "whole": whole, "same": same,
                                    "empty": all(p.data.numel() == 0 for p in model.parameters())})
    if rank == 0:
        with open(out_path, "w") as fh:
            json.dump(report, fh)


if __name__ == "__main__":
    main(*sys.argv[1:4])
