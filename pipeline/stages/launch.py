"""DVC's `train` command: run the train stage in one process or under torchrun on several GPUs.

`python -m pipeline.stages.launch pipeline.stages.train [--set key=value ...]` (dvc.yaml's train command;
the stage module defaults to pipeline.stages.train) reads `train.deepspeed.num_processes` (N) and
execs `python -m pipeline.stages.train` when N is 1 (or a launcher already started this process), and
`python -m torch.distributed.run --standalone --nproc_per_node N -m pipeline.stages.train` (torchrun,
from the same interpreter) otherwise, so multi-GPU training stays inside `dvc repro`.  Overrides are
passed on to every rank.  N larger than the visible GPU count fails before anything starts.
"""
from __future__ import annotations

import os
import sys

import torch

from pipeline.config import ConfigError, Params, load_params
from pipeline.stages.common import parse_overrides
from pipeline.train.distributed import launched

STAGE = "pipeline.stages.train"
READS = ("train.deepspeed.num_processes",)


def command(params: Params, argv: list[str], *, python: str = sys.executable, stage: str = STAGE) -> list[str]:
    """The command line that runs the train stage with `params` (argv: the --set overrides)."""
    n = params.train.deepspeed.num_processes
    if n == 1 or launched():
        return [python, "-m", stage, *argv]
    if torch.cuda.is_available() and n > torch.cuda.device_count():
        raise ConfigError(f"params.yaml: key 'train.deepspeed.num_processes' = {n}: only "
                          f"{torch.cuda.device_count()} GPUs are visible. Fix: use at most that many processes")
    return [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), "-m", stage, *argv]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage = argv.pop(0) if argv and argv[0].startswith("pipeline.stages.") else STAGE
    if {"-h", "--help"} & set(argv):  # dvc.yaml's train command: its --help is the launched stage's
        import importlib

        from pipeline.stages.common import stage_help
        print((__doc__ or "").strip() + "\n\n" + stage_help(importlib.import_module(stage)))
        return
    try:
        cmd = command(load_params(overrides=parse_overrides(argv)), argv, stage=stage)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print("launch: " + " ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
