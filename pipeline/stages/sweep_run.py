"""One cell of the method comparison: train and evaluate arm `<name>` with `<seed>` into its own run dir.

    python -m pipeline.stages.sweep_run --name aer --seed 1     (driven by comparison/dvc.yaml's matrix)

The arm `compare.arms.<name>` gives the entropy method and its train.* / entropy.* overrides; every
output of the cell goes under `<compare.runs_dir>/<name>-s<seed>/`, and only the trained model is
evaluated (the base model's numbers come from the main pipeline).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config import ConfigError, Params, load_params
from pipeline.config.schema import arm_params
from pipeline.stages import evaluate, train
from pipeline.stages.common import parse_overrides


def cell_overrides(params: Params, name: str, seed: int) -> dict:
    arm = params.compare.arms.get(name)
    if arm is None:
        raise ConfigError(f"params.yaml: compare.arms has no arm named {name!r}. "
                          f"Fix: use one of {sorted(params.compare.arms)}")
    run = Path(params.compare.runs_dir) / f"{name}-s{seed}"
    out = {"seed": seed, "train.method": arm.method, **arm.overrides, "train.out_dir": str(run / "model"),
           "train.log_dir": str(run), "train.metrics_file": str(run / "train.json"),
           "eval.out_dir": str(run / "eval"), "eval.metrics_file": str(run / "eval.json"), "eval.models": ["trained"]}
    if params.compare.steps is not None:
        out["train.steps"] = params.compare.steps
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override params.yaml before the cell's own overrides (e.g. compare.steps=20)")
    args = ap.parse_args(argv)
    try:
        sets = parse_overrides([x for kv in args.set for x in ("--set", kv)])
        base = load_params(overrides=sets)
        cell = cell_overrides(base, args.name, args.seed)
        arm_params(base, args.name)  # a bad arm is reported by name, before anything loads
        params = load_params(overrides={**sets, **cell})
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    train.run(params)
    evaluate.run(params)


if __name__ == "__main__":
    main()
