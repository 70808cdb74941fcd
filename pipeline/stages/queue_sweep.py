"""`make sweep`: queue every comparison arm x seed as a DVC experiment of the root pipeline, then start
one queue worker.

    python -m pipeline.stages.queue_sweep            # dvc exp run --queue ... per cell, then dvc queue start -j 1
    python -m pipeline.stages.queue_sweep --dry-run  # print the commands only

The cells come from params.yaml's `compare.arms` and `compare.seeds`, with the overrides of `make
compare`'s cells (`sweep_run.cell_overrides`: method, seed, the arm's overrides, `compare.steps`) minus
their run-dir paths, so there is no second method list.
Each experiment is the whole root pipeline with `-S` overrides; `seed` is the pipeline seed, so a new seed
also re-runs prepare, base_model, difficulty and entropy (`make compare` keeps those fixed and varies
only training).  Results: `dvc exp show`; progress: `dvc queue status`, `dvc queue logs <name>`.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.config import ConfigError, Params, load_params
from pipeline.stages.sweep_run import cell_overrides


# A comparison cell writes into its own run dir; an experiment keeps the pipeline's paths.
CELL_ONLY = ("train.out_dir", "train.log_dir", "train.metrics_file", "eval.out_dir", "eval.metrics_file", "eval.models")


def _value(value) -> str:
    """A `-S key=value` value: strings as they are, anything else as YAML/JSON (true, null, 0.28, [1, 2])."""
    return value if isinstance(value, str) else json.dumps(value)


def exp_name(arm: str, seed: int) -> str:
    """A cell's DVC experiment name, `<arm>-s<seed>`; the Prefect sweep (flows/reports.exp_name) uses the same."""
    return f"{arm}-s{seed}"


def queue_commands(params: Params, workers: int = 1) -> list[list[str]]:
    """One `dvc exp run --queue` per comparison arm x seed (the overrides of `make compare`'s cell, minus
    its run-dir paths), then `dvc queue start`."""
    out = []
    for name in params.compare.arms:
        for seed in params.compare.seeds:
            sets = {k: v for k, v in cell_overrides(params, name, seed).items() if k not in CELL_ONLY}
            cmd = ["dvc", "exp", "run", "--queue", "dvc.yaml", "--name", exp_name(name, seed)]
            out.append(cmd + [arg for key, value in sets.items() for arg in ("-S", f"{key}={_value(value)}")])
    return out + [["dvc", "queue", "start", "-j", str(workers)]]


def dvc_executable() -> str:
    """The dvc beside this interpreter (the project venv) when there is one, else the one on PATH."""
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else "dvc"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("-j", "--workers", type=int, default=1, help="queue workers (default 1: one CPU or GPU pool)")
    args = ap.parse_args(argv)
    try:
        commands = queue_commands(load_params(), args.workers)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for cmd in commands:
        print(shlex.join(cmd), flush=True)
        if not args.dry_run and subprocess.run([dvc_executable(), *cmd[1:]]).returncode != 0:
            print(f"error: {shlex.join(cmd)} failed; queued so far: `dvc queue status`", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
