"""Method comparison: aggregate method x seed runs into a table with CIs over seeds, and curves.

For each method: final entropy / H0, held-out accuracy overall and per difficulty level, pass@k and
maj@k (all from the trained model's evaluation), as mean and 95% Student-t interval over seeds; the
step curves (entropy, coefficient, accuracy) are averaged over seeds.  The report says plainly
whether each method beats GRPO (Welch's 95% interval of the difference in means excluding zero) or not.
Quantiles come from scipy.stats.t (exact for any number of seeds; Welch-Satterthwaite degrees of
freedom for the difference, which does not assume equal variances across methods).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Optional

import numpy as np

from pipeline.utils.io import read_json


def _t975(df: float) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (two-sided 95%)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def mean_ci(values: list[float]) -> dict:
    """Mean and two-sided 95% Student-t interval (n - 1 df) over the finite values; n = 1 gives a point."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if v.size == 0:
        return {"mean": None, "ci95": [None, None], "n": 0}
    if v.size == 1:
        return {"mean": float(v[0]), "ci95": [float(v[0]), float(v[0])], "n": 1}
    half = _t975(v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return {"mean": float(v.mean()), "ci95": [float(v.mean() - half), float(v.mean() + half)], "n": int(v.size)}


def welch_interval(a: list[float], b: list[float]) -> tuple[float, float]:
    """Welch's 95% interval for mean(a) - mean(b) (Welch 1947; Satterthwaite df).  Both need >= 2 values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = float(a.mean() - b.mean())
    if va + vb == 0:  # no spread in either sample: the interval is the point itself
        return diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = _t975(df) * math.sqrt(va + vb)
    return diff - half, diff + half


def load_run(run_dir: Path, benchmark: str, suffixes: tuple[str, ...] = ()) -> dict:
    """A comparison cell: its step curve (train.csv), the trained model's evaluation on `benchmark` and,
    per suffix (e.g. "@T0.6"), the evaluation of that variant."""
    with open(run_dir / "train.csv", newline="") as fh:
        curve = [{k: float(v) if v not in ("", None) else float("nan") for k, v in r.items()} for r in csv.DictReader(fh)]
    ev = read_json(run_dir / "eval" / "trained" / benchmark / "metrics.json")
    variants = {sfx: read_json(run_dir / "eval" / "trained" / (benchmark + sfx) / "metrics.json") for sfx in suffixes}
    return {"curve": curve, "eval": ev, "variants": variants}


def arm_label(name: str, method: str, overrides: dict) -> str:
    """What an arm runs, e.g. 'siren (method siren; train.agg_mode=seq-mean-token-sum-norm)'."""
    parts = [f"method {method}"] + [f"{k}={v}" for k, v in sorted(overrides.items())]
    return f"{name} ({'; '.join(parts)})"


def summarise_method(runs: list[dict], h0: float) -> dict:
    row = {"final_entropy_over_h0": mean_ci([r["curve"][-1].get("entropy", float("nan")) / h0 for r in runs])}
    metrics = [k for k in runs[0]["eval"] if "@" in k]
    for k in metrics:
        row[k] = mean_ci([r["eval"][k]["mean"] for r in runs])
    for sfx in runs[0].get("variants", {}):
        row[f"avg@n{sfx}"] = mean_ci([r["variants"][sfx]["avg@n"]["mean"] for r in runs])
    for level in sorted(runs[0]["eval"].get("by_level", {})):
        row[f"avg@n/level{level}"] = mean_ci([r["eval"]["by_level"][level]["avg@n"]["mean"] for r in runs])
    return row


def beats(a: list[float], b: list[float]) -> Optional[bool]:
    """True/False when Welch's 95% interval of mean(a) - mean(b) excludes 0 above/below; None when it
    contains 0 or either side has fewer than 2 values."""
    if len(a) < 2 or len(b) < 2:
        return None
    lo, hi = welch_interval(a, b)
    if lo > 0:
        return True
    if hi < 0:
        return False
    return None


def mean_curve(runs: list[dict], key: str) -> tuple[list[float], list[float]]:
    steps = [r["step"] for r in runs[0]["curve"]]
    values = [float(np.nanmean([run["curve"][i].get(key, float("nan")) for run in runs if i < len(run["curve"])]))
              if any(key in run["curve"][i] for run in runs if i < len(run["curve"])) else float("nan")
              for i in range(len(steps))]
    return steps, values


def render_markdown(table: dict, verdicts: dict, h0: float, benchmark: str, *, labels: dict | None = None,
                    baseline: str = "grpo", phenomena: list | None = None, base: dict | None = None) -> str:
    cols = ["final_entropy_over_h0", "avg@n"] + sorted(k for row in table.values() for k in row
                                                        if k.startswith("avg@n@")) + ["pass@1", "maj@1"]
    cols = list(dict.fromkeys(cols + sorted({k for row in table.values() for k in row
                                             if k.startswith(("pass@", "maj@", "avg@n/level"))} - set(cols))))
    lines = [f"# Method comparison ({benchmark}; H0 = {h0:.4f} nats/token)", ""]
    if phenomena:
        lines += ["## Phenomena (each must hold on every seed)", ""]
        for p in phenomena:
            seeds = ", ".join(_fmt_seed(s) for s in p.get("per_seed", []))
            value = "n/a" if p["value"] is None else f"{p['value']:.3f}"
            note = f": {p['note']}" if p.get("note") else ""
            lines.append(f"- **{p['name']}**: {'holds' if p['holds'] else 'does NOT hold'} "
                         f"(value {value}, threshold {p['threshold']}; per seed: {seeds}){note}")
        lines.append("")
    lines += [f"Mean over seeds with 95% Student-t intervals. `vs {baseline}` compares held-out avg@n: better / "
              "worse when the Welch interval of the difference excludes zero, else 'no difference shown'.", ""]
    if base:
        lines.append("Base model: " + ", ".join(f"{k} {v:.3f}" for k, v in base.items()) + "\n")
    lines += [f"| arm | vs {baseline} | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, row in table.items():
        cells = []
        for c in cols:
            m = row.get(c)
            cells.append("—" if not m or m["mean"] is None else f"{m['mean']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]")
        v = verdicts.get(name)
        verdict = "baseline" if v == "baseline" else {True: "better", False: "worse", None: "no difference shown"}[v]
        lines.append(f"| {(labels or {}).get(name, name)} | {verdict} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt_seed(s) -> str:
    if isinstance(s, dict):
        return "{" + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items()) + "}"
    return f"{s:.3f}"
