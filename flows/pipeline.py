"""Prefect flows over the DVC stages: the end-to-end pipeline and the method x seed sweep.

    python -m flows.pipeline                  # run the pipeline flow once (DVC skips what is up to date)
    python -m flows.pipeline --sweep          # every method x seed through `dvc exp run`
"""
from __future__ import annotations

import argparse

from prefect import flow

from flows.tasks import STAGES, exp_run, push, repro_stage, tracking_cli

SWEEP_METHODS = ("none", "fixed", "aer", "aent", "siren")
SWEEP_SEEDS = (1, 2, 3)


@flow(name="aer-pipeline", log_prints=True)
def pipeline_flow(stages: list[str] = list(STAGES), repo: str = ".", push_outputs: bool = False) -> list[str]:
    """prepare -> base_model -> difficulty -> entropy -> train -> evaluate, each via `dvc repro`, with
    their MLflow runs nested under one parent run for this flow run."""
    parent = tracking_cli(["open", "prefect-pipeline"], repo) or None
    status = "FAILED"
    try:
        outputs = [repro_stage(stage, repo, parent) for stage in stages]
        if push_outputs:
            push(repo)
        status = "FINISHED"
        return outputs
    finally:
        if parent:
            tracking_cli(["close", parent, status], repo)


@flow(name="aer-sweep", log_prints=True)
def sweep_flow(methods: list[str] = list(SWEEP_METHODS), seeds: list[int] = list(SWEEP_SEEDS), repo: str = ".",
               extra: dict | None = None) -> list[str]:
    """Train and evaluate each method x seed as a DVC experiment (sequential: one CPU or GPU pool)."""
    runs = []
    for method in methods:
        for seed in seeds:
            overrides = {"train.method": method, "seed": seed, **(extra or {})}
            runs.append(exp_run(overrides, f"{method.replace('_', '-')}-s{seed}", repo))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the AER pipeline or sweep flow once")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--repo", default=".")
    args = ap.parse_args()
    if args.sweep:
        sweep_flow(repo=args.repo)
    else:
        pipeline_flow(repo=args.repo)


if __name__ == "__main__":
    main()
