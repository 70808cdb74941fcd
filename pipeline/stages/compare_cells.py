"""`make compare`: every comparison cell through DVC, several at a time, then the report stage.

    python -m pipeline.stages.compare_cells --jobs 2          # comparison/dvc.yaml, cells in parallel
    python -m pipeline.stages.compare_cells --short           # one seed, compare.short_steps steps, no DVC

`dvc repro` runs stages one after another; the cells are independent, so this runs `dvc repro -s` on
each cell with `--jobs` workers (DVC locks per stage, and skips cells that are up to date), then `dvc repro
comparison/dvc.yaml` for the report.  Every arm is validated first, so a bad arm fails before anything
trains.  A failed cell does not stop the others; the run exits 1 listing them.  `--short` is the quick
look: the first seed only, `compare.short_steps` steps, outputs in runs-short/ and reports/short/,
outside DVC (nothing it writes is tracked).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from pipeline.config import ConfigError, Params, load_params
from pipeline.config.schema import arm_params
from pipeline.stages.compare import check_phenomena
from pipeline.stages.queue_sweep import dvc_executable

LOGS = Path(".compare_logs")


def cells(params: Params, seeds: list[int] | None = None) -> list[tuple[str, int]]:
    return [(arm, seed) for arm in params.compare.arms for seed in (seeds or params.compare.seeds)]


def _run(cmd: list[str], log: Path) -> tuple[int, float]:
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "w", encoding="utf-8") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    return rc, time.time() - start


def run_cells(commands: dict[str, list[str]], jobs: int) -> list[str]:
    """Run {name: command} with `jobs` workers; print one line per cell as it finishes; return the failed
    names (in finishing order)."""
    failed, done = [], 0

    def one(name: str) -> tuple[str, int, float]:
        return (name, *_run(commands[name], LOGS / f"{name}.log"))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in as_completed([pool.submit(one, name) for name in commands]):  # in finishing order
            name, rc, secs = future.result()
            done += 1
            status = "ok" if rc == 0 else f"FAILED (exit {rc}; log {LOGS / (name + '.log')})"
            print(f"[{done}/{len(commands)}] {name}: {status}, {secs:.0f} s", flush=True)
            if rc:
                failed.append(name)
    return failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="cells run at once (each uses OMP_NUM_THREADS threads)")
    ap.add_argument("--short", action="store_true", help="one seed, compare.short_steps steps, untracked outputs")
    args = ap.parse_args(argv)
    try:
        params = load_params()
        for arm in params.compare.arms:
            arm_params(params, arm)
        check_phenomena(params)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    py, dvc = sys.executable, dvc_executable()
    if args.short:
        seed = params.compare.seeds[0]
        extra = ["--set", f"compare.steps={params.compare.short_steps}", "--set", "compare.runs_dir=runs-short",
                 "--set", f"compare.seeds=[{seed}]", "--set", "compare.out_dir=reports/short"]
        commands = {f"{arm}-s{s}": [py, "-m", "pipeline.stages.sweep_run", "--name", arm, "--seed", str(s), *extra]
                    for arm, s in cells(params, [seed])}
        report = [py, "-m", "pipeline.stages.compare", *extra]
    else:
        commands = {f"{arm}-s{s}": [dvc, "repro", "-s", f"comparison/dvc.yaml:run@{arm}-{s}"] for arm, s in cells(params)}
        report = [dvc, "repro", "comparison/dvc.yaml"]
    failed = run_cells(commands, args.jobs)
    if failed:
        print(f"error: {len(failed)} comparison cells failed: {', '.join(failed)}; the others are kept", file=sys.stderr)
        return 1
    return subprocess.run(report).returncode


if __name__ == "__main__":
    raise SystemExit(main())
