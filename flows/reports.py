"""What the flows read back from the workspace: the sweep matrix from params.yaml and the results the
stages wrote (headline metrics, the comparison report, per-cell results), rendered for Prefect artifacts.

Plain functions over YAML and JSON files: flows/ never imports the library, so the sweep list is read from
params.yaml's `compare.arms` / `compare.seeds` rather than copied, and every file is optional (a flow
that ran only some stages publishes what exists).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import yaml


def read_params(repo: str | os.PathLike) -> dict:
    """The workspace's params file ($AER_PARAMS, relative to the repo, else params.yaml); {} when absent."""
    path = Path(repo) / os.environ.get("AER_PARAMS", "params.yaml")
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def _get(params: dict, dotted: str, default: Any = None) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def sweep_cells(params: dict, names: Optional[list[str]] = None,
                seeds: Optional[list[int]] = None) -> list[tuple[str, int, dict]]:
    """(arm name, seed, `dvc exp run -S` overrides) for each `compare.arms` entry x `compare.seeds`,
    optionally restricted to some arm names and seeds; the overrides mirror the comparison cells."""
    arms = _get(params, "compare.arms", {}) or {}
    if not arms:
        raise ValueError("params.yaml: compare.arms is missing or empty; the sweep has nothing to run")
    unknown = sorted(set(names or []) - set(arms))
    if unknown:
        raise ValueError(f"params.yaml: compare.arms has no arm named {unknown}; arms are {list(arms)}")
    cells = []
    for name, arm in arms.items():
        if names and name not in names:
            continue
        for seed in (seeds or _get(params, "compare.seeds", []) or []):
            overrides = {"train.method": arm["method"], **(arm.get("overrides") or {}), "seed": seed}
            if _get(params, "compare.steps") is not None:
                overrides["train.steps"] = _get(params, "compare.steps")
            cells.append((name, seed, overrides))
    return cells


def exp_name(name: str, seed: int) -> str:
    """The DVC experiment name of a cell, `<arm>-s<seed>`: the rule of `make sweep`
    (pipeline/stages/queue_sweep.exp_name, which flows/ may not import), so both name a cell alike."""
    return f"{name}-s{seed}"


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        out.update(_flat(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


def headline_markdown(repo: str | os.PathLike, params: dict) -> Optional[str]:
    """The eval headline (headline.json beside `eval.metrics_file`, else the metrics file itself) and the
    comparison report, as one markdown document; None when neither exists."""
    repo = Path(repo)
    eval_file = repo / _get(params, "eval.metrics_file", "metrics/eval.json")
    parts = []
    head = _read_json(eval_file.with_name("headline.json"))
    metrics = _flat(head.get("headline", head)) if head else _flat(_read_json(eval_file) or {})
    if metrics:
        rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in metrics.items())
        parts.append(f"## Eval headline\n\n| metric | value |\n|---|---|\n{rows}\n")
    report = repo / _get(params, "compare.out_dir", "reports") / "comparison.md"
    if report.is_file():
        parts.append("## Method comparison\n\n" + report.read_text(encoding="utf-8"))
    return "\n".join(parts) or None


def cell_row(name: str, seed: Any, run_dir: Path) -> Optional[dict]:
    """One method x seed result from a comparison cell's headline.json (else its eval.json)."""
    head = _read_json(run_dir / "headline.json")
    if head:
        values = {k: v for k, v in _flat(head.get("headline", head)).items() if k not in ("method", "seed")}
    else:
        trained = (_read_json(run_dir / "eval.json") or {}).get("trained", {})
        values = {f"{bench}.{k}": m[k] for bench, m in trained.items() if isinstance(m, dict)
                  for k in _headline_keys(m)}
    return {"method": name, "seed": seed, **values} if values else None


def results_rows(repo: str | os.PathLike, params: dict) -> list[dict]:
    """Method x seed results: one row per finished comparison cell (`compare.runs_dir/<name>-s<seed>`), or
    per method from reports/comparison.json (means over seeds) when no cell directory is present."""
    repo = Path(repo)
    runs = repo / _get(params, "compare.runs_dir", "runs")
    rows = [row for name in _get(params, "compare.arms", {}) or {}
            for seed in _get(params, "compare.seeds", []) or []
            if (row := cell_row(name, seed, runs / f"{name}-s{seed}"))]
    if rows:
        return rows
    report = _read_json(repo / _get(params, "compare.out_dir", "reports") / "comparison.json") or {}
    seeds = ",".join(str(s) for s in report.get("seeds", []))
    return [{"method": name, "seed": f"mean over {seeds}", **_summary(stats)}
            for name, stats in report.get("table", {}).items()]


def _headline_keys(keys) -> list[str]:
    """avg@n, pass@k and maj@k at the largest k, and entropy / H0, of a metrics dict's keys."""
    keys = list(keys)

    def largest(prefix: str) -> list[str]:
        ks = [k for k in keys if k.startswith(prefix) and k[len(prefix):].isdigit()]
        return [max(ks, key=lambda k: int(k[len(prefix):]))] if ks else []

    return [k for k in ("avg@n", *largest("pass@"), *largest("maj@"), "final_entropy_over_h0") if k in keys]


def _summary(stats: dict) -> dict:
    """The headline columns of a comparison row (means over seeds)."""
    return {k: stats[k].get("mean") for k in _headline_keys(stats) if isinstance(stats[k], dict)}
