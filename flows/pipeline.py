"""Prefect flows over the DVC stages: the end-to-end pipeline and the method x seed sweep.

    python -m flows.pipeline                  # run the pipeline flow once (DVC skips what is up to date)
    python -m flows.pipeline --sweep          # every compare.arms entry x compare.seeds via `dvc exp run`

Both hold the workspace's concurrency slot (`workspace_slot`) while DVC runs, so overlapping runs on one
clone queue instead of failing on DVC's lock.  Re-running a flow resumes: DVC skips finished stages and
training continues from its newest checkpoint.  A pipeline run with nothing stale opens no MLflow run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow

from flows import reports
from flows.tasks import (STAGES, _logger, existing_experiments, exp_run, publish, push, repro_stage, stale_stages,
                         tracking_cli, workspace_slot)


@flow(name="aer-pipeline", log_prints=True)
def pipeline_flow(stages: list[str] = list(STAGES), repo: str = ".", push_outputs: bool = False) -> list[str]:
    """prepare -> base_model -> difficulty -> entropy -> train -> evaluate, each via `dvc repro`, with
    their MLflow runs nested under one parent run for this flow run (none when nothing is stale)."""
    with workspace_slot(repo):
        stale = stale_stages(stages, repo)
        if not stale:
            _logger().info("dvc status: %s up to date; nothing to run, no MLflow parent run", ", ".join(stages))
            publish(repo)
            return []
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
            publish(repo, parent, return_state=True)  # a failed publish must not hide a stage's error


@flow(name="aer-sweep", log_prints=True)
def sweep_flow(names: list[str] | None = None, seeds: list[int] | None = None, repo: str = ".",
               extra: dict | None = None) -> list[dict]:
    """Train and evaluate each `compare.arms` entry x `compare.seeds` of params.yaml (or the given subset)
    as a DVC experiment named `<name>-s<seed>`, sequentially (one CPU or GPU pool), skipping cells whose
    experiment exists from an earlier run; returns one result row per cell."""
    params = reports.read_params(repo)
    metrics_dir = Path(repo) / Path(params.get("eval", {}).get("metrics_file", "metrics/eval.json")).parent
    rows = []
    with workspace_slot(repo):
        done = existing_experiments(repo)
        for name, seed, overrides in reports.sweep_cells(params, names, seeds):
            exp = reports.exp_name(name, seed)
            if exp in done:  # a re-run resumes the sweep; `dvc exp remove <name>` to run a cell again
                _logger().info("experiment %s exists: skipped (see `dvc exp show`)", exp)
                rows.append({"method": name, "seed": seed, "status": f"experiment {exp} from an earlier run"})
                continue
            exp_run({**overrides, **(extra or {})}, exp, repo)
            # `dvc exp run` leaves the experiment's results in the workspace until the next one runs
            rows.append(reports.cell_row(name, seed, metrics_dir) or {"method": name, "seed": seed})
        publish(repo, None, rows)
    return rows


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
