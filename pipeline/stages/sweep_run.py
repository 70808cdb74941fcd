"""One cell of the method comparison: train and evaluate `<name>` with `<seed>` into its own run dir.

    python -m pipeline.stages.sweep_run --name aer --seed 1     (driven by comparison/dvc.yaml's matrix)

The entry `name` of `compare.methods` gives the entropy method and optional Clip-Higher bound; every
output of the cell goes under `<compare.runs_dir>/<name>-s<seed>/`, and only the trained model is
evaluated (the base model's numbers come from the main pipeline).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import ConfigError, Params, load_params
from pipeline.stages import evaluate, train


def cell_overrides(params: Params, name: str, seed: int) -> dict:
    entry = next((m for m in params.compare.methods if m.name == name), None)
    if entry is None:
        raise ConfigError(f"params.yaml: compare.methods has no entry named {name!r}. "
                          f"Fix: use one of {[m.name for m in params.compare.methods]}")
    run = Path(params.compare.runs_dir) / f"{name}-s{seed}"
    out = {"seed": seed, "train.method": entry.method, "train.out_dir": str(run / "model"),
           "train.log_dir": str(run), "train.metrics_file": str(run / "train.json"),
           "eval.out_dir": str(run / "eval"), "eval.metrics_file": str(run / "eval.json"), "eval.models": ["trained"]}
    if entry.clip_high is not None:
        out["train.clip_high"] = entry.clip_high
    if params.compare.steps is not None:
        out["train.steps"] = params.compare.steps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args()
    try:
        params = load_params(overrides=cell_overrides(load_params(), args.name, args.seed))
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    train.run(params)
    evaluate.run(params)


if __name__ == "__main__":
    main()
