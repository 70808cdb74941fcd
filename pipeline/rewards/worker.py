"""Verifier worker process: `python -m pipeline.rewards.worker`, JSON lines on stdin/stdout.

A plain subprocess (not multiprocessing) so that it never re-imports the caller's __main__ and can be
killed at any point.  It prints `ready` once math-verify is imported, then answers each request
`[idx, kind, a, b]` with `[idx, status, pred]`.
"""
from __future__ import annotations

import json
import sys


def main() -> None:
    from pipeline.rewards.grading import grade_one, warm_up

    warm_up()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        idx, kind, a, b = json.loads(line)
        status, pred = grade_one(kind, a, b)
        out.write(json.dumps([idx, status, pred]) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
