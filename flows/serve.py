"""Serve the flows to a Prefect server on a schedule.

    prefect server start --host 127.0.0.1                                  # in another terminal (UI on :4200)
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m flows.serve --cron "0 2 * * *" --timezone Europe/Berlin      # nightly pipeline; --sweep-cron too

`prefect deployment run aer-pipeline/aer-pipeline-nightly` triggers a run by hand.  Every deployment runs
one flow run at a time (`concurrency_limit=1`, later runs wait in the queue), and the flows also hold the
workspace's global concurrency slot, so the pipeline and the sweep never run DVC in one clone at once.
Schedules take their time zone explicitly (`--timezone`, an IANA name); cron alone would follow whatever
zone the server runs in.
"""
from __future__ import annotations

import argparse

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from flows.pipeline import pipeline_flow, sweep_flow

ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def deployments(cron: str | None, sweep_cron: str | None, repo: str, timezone: str):
    def schedules(expr: str | None) -> list:
        return [Cron(expr, timezone=timezone)] if expr else []

    deps = [pipeline_flow.to_deployment(name="aer-pipeline-nightly", schedules=schedules(cron),
                                        concurrency_limit=ONE_AT_A_TIME, parameters={"repo": repo})]
    if sweep_cron:
        deps.append(sweep_flow.to_deployment(name="aer-sweep-weekly", schedules=schedules(sweep_cron),
                                             concurrency_limit=ONE_AT_A_TIME, parameters={"repo": repo}))
    return deps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cron", default="0 2 * * *", help="schedule of the pipeline flow (cron)")
    ap.add_argument("--sweep-cron", default=None, help="schedule of the method x seed sweep, e.g. '0 3 * * 6'")
    ap.add_argument("--timezone", required=True, help="IANA time zone of both schedules, e.g. UTC or Europe/Berlin")
    ap.add_argument("--repo", default=".")
    args = ap.parse_args()
    serve(*deployments(args.cron, args.sweep_cron, args.repo, args.timezone))


if __name__ == "__main__":
    main()
