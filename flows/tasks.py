"""Prefect tasks: thin wrappers that let DVC run the stages and decide what is stale.

A task runs `dvc repro <stage>` (which also brings stale upstream stages up to date) or
`dvc exp run -S key=value`; DVC's lock file is the cache, so Prefect's own result caching is off and
a re-run never recomputes what DVC says is up to date.  Only remote transfers retry: a retried
training run would silently double the compute and can only fail the same way again.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

STAGES = ("prepare", "base_model", "difficulty", "entropy", "train", "evaluate")


def dvc_executable() -> str:
    """The dvc beside the running interpreter (the project venv), else the one on PATH."""
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else (shutil.which("dvc") or "dvc")


def _env(parent_run: str | None = None) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if parent_run:
        env["AER_PARENT_RUN_ID"] = parent_run  # stage runs nest under the flow's MLflow run
    return env


def _logger():
    """The run logger inside a flow; a plain logger when a task's `.fn` is called directly."""
    try:
        return get_run_logger()
    except Exception:
        import logging

        return logging.getLogger("flows")


def run_dvc(args: list[str], cwd: str, parent_run: str | None = None) -> str:
    """Run dvc with `args` in `cwd`; a failure raises with the tail of its output."""
    proc = subprocess.run([dvc_executable(), *args], cwd=cwd, env=_env(parent_run), capture_output=True, text=True)
    output = (proc.stdout + proc.stderr)[-4000:]
    if proc.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed (exit {proc.returncode}):\n{output}")
    return output


def tracking_cli(args: list[str], repo: str) -> str:
    """The library's tracking CLI in a subprocess (flows/ never imports the library or torch)."""
    proc = subprocess.run([sys.executable, "-m", "pipeline.tracking", *args], cwd=repo, env=_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        _logger().warning("tracking %s failed: %s", args[0], proc.stderr[-2000:])
        return ""
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


@task(name="dvc-repro", cache_policy=NO_CACHE, retries=0)
def repro_stage(stage: str, repo: str = ".", parent_run: str | None = None) -> str:
    """Bring `stage` up to date (DVC skips it when nothing it depends on changed)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    out = run_dvc(["repro", stage], repo, parent_run)
    _logger().info("dvc repro %s:\n%s", stage, out)
    return out


@task(name="dvc-exp-run", cache_policy=NO_CACHE, retries=0)
def exp_run(overrides: dict, name: str, repo: str = ".") -> str:
    """One experiment (e.g. a method x seed cell) with params overridden by `dvc exp run -S`."""
    args = ["exp", "run", "dvc.yaml", "--name", name]  # the main pipeline, not the comparison matrix
    for key, value in overrides.items():
        args += ["-S", f"{key}={value}"]
    return run_dvc(args, repo)


@task(name="dvc-push", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
def push(repo: str = ".", remote: str | None = None) -> str:
    """Upload DVC-tracked outputs; network transfers are the one place a retry can help."""
    return run_dvc(["push"] + (["-r", remote] if remote else []), repo)
