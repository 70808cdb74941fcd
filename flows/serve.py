"""Serve the flows to a Prefect server with a schedule.

    prefect server start --host 127.0.0.1                 # in another terminal (UI on :4200)
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m flows.serve --cron "0 2 * * *"              # nightly pipeline; --sweep-cron for the sweep

`prefect deployment run aer-pipeline/aer-pipeline-nightly` triggers a run by hand.
"""
from __future__ import annotations

import argparse

from prefect import serve

from flows.pipeline import pipeline_flow, sweep_flow


def deployments(cron: str | None, sweep_cron: str | None, repo: str):
    deps = [pipeline_flow.to_deployment(name="aer-pipeline-nightly", cron=cron, parameters={"repo": repo})]
    if sweep_cron:
        deps.append(sweep_flow.to_deployment(name="aer-sweep-weekly", cron=sweep_cron, parameters={"repo": repo}))
    return deps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cron", default="0 2 * * *", help="schedule of the pipeline flow (cron, server time zone)")
    ap.add_argument("--sweep-cron", default=None, help="schedule of the method x seed sweep, e.g. '0 3 * * 6'")
    ap.add_argument("--repo", default=".")
    args = ap.parse_args()
    serve(*deployments(args.cron, args.sweep_cron, args.repo))


if __name__ == "__main__":
    main()
