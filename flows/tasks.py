"""Prefect tasks: thin wrappers that let DVC run the stages and decide what is stale.

A task runs `dvc repro <stage>` (which also brings stale upstream stages up to date) or
`dvc exp run -S key=value`; DVC's lock file is the cache, so Prefect's own result caching is off and
a re-run never recomputes what DVC says is up to date.  Each command's output (stdout and stderr
interleaved, in order) goes to the Prefect logger line by line while it runs, so the task page shows
a stage's progress live.  Task runs are named by stage or experiment.  Only remote transfers retry: a
retried training run would silently double the compute and can only fail the same way again.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

STAGES = ("prepare", "base_model", "difficulty", "entropy", "train", "evaluate")
TAIL_LINES = 200  # kept for the error message and the task result; the log gets every line


def dvc_executable() -> str:
    """The dvc beside the running interpreter (the project venv), else the one on PATH."""
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else (shutil.which("dvc") or "dvc")


def _env(parent_run: str | None = None) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # stage output reaches the log per line, not per filled pipe buffer
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


def stream(cmd: list[str], cwd: str, env: dict) -> tuple[int, list[str]]:
    """Run `cmd`, logging each line of its output as it arrives: stderr is merged into stdout so the two
    keep their order, and text mode turns progress bars' carriage returns into lines."""
    logger = _logger()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", bufsize=1) as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.strip():
                logger.info(line)
                tail.append(line)
    return proc.returncode, list(tail)


def run_dvc(args: list[str], cwd: str, parent_run: str | None = None) -> str:
    """Run dvc with `args` in `cwd`, streaming its output; returns the last lines, raises on failure."""
    rc, tail = stream([dvc_executable(), *args], cwd, _env(parent_run))
    output = "\n".join(tail)
    if rc != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed (exit {rc}); its last lines:\n{output}")
    return output


def tracking_cli(args: list[str], repo: str) -> str:
    """The library's tracking CLI in a subprocess (flows/ never imports the library or torch)."""
    proc = subprocess.run([sys.executable, "-m", "pipeline.tracking", *args], cwd=repo, env=_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        _logger().warning("tracking %s failed: %s", args[0], proc.stderr[-2000:])
        return ""
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def workspace_limit(repo: str) -> str:
    """The name of the workspace's global concurrency limit: one per clone (resolved path)."""
    path = Path(repo).resolve()
    return f"dvc-workspace-{path.name}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


@contextlib.contextmanager
def workspace_slot(repo: str) -> Iterator[None]:
    """Hold the workspace's only slot while a flow runs DVC: two overlapping flow runs on one clone would
    otherwise fail on DVC's lock ("... is busy"); the second now waits for the first."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    name = workspace_limit(repo)
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name, 1)
        except ObjectAlreadyExists:  # another run created it between the read and the create
            pass
    _logger().info("taking the workspace's concurrency slot %s (waits while another flow run holds it)", name)
    with concurrency(name, occupy=1, strict=True):
        yield


@task(name="dvc-status", task_run_name="status", cache_policy=NO_CACHE, retries=0)
def stale_stages(stages: list[str], repo: str = ".") -> dict:
    """`dvc status --with-deps` for `stages`: what a repro would run ({} when everything is up to date)."""
    proc = subprocess.run([dvc_executable(), "status", "--with-deps", "--json", *stages], cwd=repo, env=_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc status failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout or "{}")


@task(name="dvc-repro", task_run_name="{stage}", cache_policy=NO_CACHE, retries=0)
def repro_stage(stage: str, repo: str = ".", parent_run: str | None = None) -> str:
    """Bring `stage` up to date (DVC skips it when nothing it depends on changed)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return run_dvc(["repro", stage], repo, parent_run)


@task(name="dvc-exp-list", task_run_name="experiments", cache_policy=NO_CACHE, retries=0)
def existing_experiments(repo: str = ".") -> set[str]:
    """Names of the DVC experiments already in the repository (on any baseline commit)."""
    proc = subprocess.run([dvc_executable(), "exp", "list", "--all-commits", "--name-only"], cwd=repo, env=_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc exp list failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


@task(name="dvc-exp-run", task_run_name="exp-{name}", cache_policy=NO_CACHE, retries=0)
def exp_run(overrides: dict, name: str, repo: str = ".") -> str:
    """One experiment (e.g. a method x seed cell) with params overridden by `dvc exp run -S`."""
    args = ["exp", "run", "dvc.yaml", "--name", name]  # the main pipeline, not the comparison matrix
    for key, value in overrides.items():
        args += ["-S", f"{key}={set_value(value)}"]
    return run_dvc(args, repo)


def set_value(value) -> str:
    """A `-S key=value` value as `make sweep` writes it (pipeline/stages/queue_sweep._value): strings as they
    are, anything else as JSON, which DVC parses as YAML (None -> null, True -> true, [1, 2]); str() would
    turn None into the string "None"."""
    return value if isinstance(value, str) else json.dumps(value)


@task(name="dvc-push", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
def push(repo: str = ".", remote: str | None = None) -> str:
    """Upload DVC-tracked outputs; network transfers are the one place a retry can help."""
    return run_dvc(["push"] + (["-r", remote] if remote else []), repo)


@task(name="publish-artifacts", task_run_name="publish-artifacts", cache_policy=NO_CACHE, retries=0)
def publish(repo: str = ".", parent_run: str | None = None, rows: list[dict] | None = None) -> list[str]:
    """Prefect artifacts of what the stages wrote: the eval headline and comparison report (markdown), the
    method x seed results (table; `rows` when the caller collected them) and the MLflow parent run (link).
    Returns the keys it created."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from flows import reports

    params = reports.read_params(repo)
    made = []
    markdown = reports.headline_markdown(repo, params)
    if markdown:
        create_markdown_artifact(markdown, key="eval-headline", description="metrics/headline.json and the "
                                 "comparison report")
        made.append("eval-headline")
    rows = rows or reports.results_rows(repo, params)
    if rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        create_table_artifact([{c: row.get(c) for c in columns} for row in rows], key="method-seed-results",
                              description="one row per method x seed (or per method, means over seeds)")
        made.append("method-seed-results")
    url = tracking_cli(["url", parent_run], repo) if parent_run else ""
    if url:
        create_link_artifact(url, link_text="MLflow parent run of this flow run", key="mlflow-run")
        made.append("mlflow-run")
    return made
