"""`make sweep`: queue every compared method x seed as a DVC experiment of the root pipeline, then start
one queue worker.

    python -m pipeline.stages.queue_sweep            # dvc exp run --queue ... per cell, then dvc queue start -j 1
    python -m pipeline.stages.queue_sweep --dry-run  # print the commands only

The cells come from params.yaml's `compare.methods` (name, method, optional clip_high) and `compare.seeds`
(and `compare.steps` when set), the same lists `make compare` reads, so there is no second method list.
Each experiment is the whole root pipeline with `-S` overrides; `seed` is the pipeline seed, so a new seed
also re-runs prepare, base_model, difficulty and entropy (`make compare` keeps those fixed and varies
only training).  Results: `dvc exp show`; progress: `dvc queue status`, `dvc queue logs <name>`.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.config import ConfigError, Params, load_params


def queue_commands(params: Params, workers: int = 1) -> list[list[str]]:
    """One `dvc exp run --queue` per compare.methods entry x compare.seeds, then `dvc queue start`."""
    c = params.compare
    out = []
    for entry in c.methods:
        for seed in c.seeds:
            sets = {"train.method": entry.method, "seed": seed}
            if entry.clip_high is not None:
                sets["train.clip_high"] = entry.clip_high
            if c.steps is not None:
                sets["train.steps"] = c.steps
            cmd = ["dvc", "exp", "run", "--queue", "dvc.yaml", "--name", f"{entry.name}-s{seed}"]
            out.append(cmd + [arg for key, value in sets.items() for arg in ("-S", f"{key}={value}")])
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
