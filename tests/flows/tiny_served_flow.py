"""Served by test_prefect_server.py: a tiny flow that writes a marker file, deployed with `serve`."""
from __future__ import annotations

import sys
from pathlib import Path

from prefect import flow


@flow(name="tiny-flow")
def tiny_flow(marker: str) -> str:
    Path(marker).write_text("ran")
    return marker


if __name__ == "__main__":
    tiny_flow.serve(name="tiny", cron="0 3 * * *", parameters={"marker": sys.argv[1]})
