"""The phenomena the embedded testbed exists to show, judged on every seed of the comparison (issue 12).

Each check takes the runs of its arm (one per seed: the step curve from train.csv and the evaluation)
and returns {name, holds, value, threshold, per_seed, ...}; it holds only if it holds on every seed:

* `grpo_gain`: held-out avg@n at the training temperature, trained minus base, >= threshold;
* `grpo_collapse`: the final step's mean token entropy / H0 <= threshold;
* `fixed_explosion`: the largest per-step mean token entropy / H0 >= threshold;
* `aer_tracking`: over the second half of training the mean entropy is within +-threshold (relative) of
  the arm's target, its `window`-step moving average (over second-half steps) stays within
  +-ma_threshold, and the reference arm's second-half mean (same seed) lies below the band; an arm that
  logs no target (`reg/target`) does not hold, with a note saying so.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np


def _entropy(run: dict) -> np.ndarray:
    return np.array([row.get("entropy", np.nan) for row in run["curve"]], dtype=float)


def gain(runs: list[dict], threshold: float, *, base: Optional[dict], benchmark: str, **_) -> dict:
    if base is None:
        return {"holds": False, "value": None, "per_seed": [], "note": "no base-model evaluation to compare with"}
    values = [r["eval"]["avg@n"]["mean"] - base["avg@n"]["mean"] for r in runs]
    return {"holds": min(values) >= threshold, "value": min(values), "per_seed": values,
            "base": base["avg@n"]["mean"], "benchmark": benchmark}


def collapse(runs: list[dict], threshold: float, *, h0: float, **_) -> dict:
    values = [float(_entropy(r)[-1] / h0) for r in runs]
    return {"holds": max(values) <= threshold, "value": max(values), "per_seed": values}


def explosion(runs: list[dict], threshold: float, *, h0: float, **_) -> dict:
    values = [float(np.nanmax(_entropy(r)) / h0) for r in runs]
    return {"holds": min(values) >= threshold, "value": min(values), "per_seed": values}


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average; the first window - 1 points average what exists so far."""
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def tracking(runs: list[dict], threshold: float, *, reference: Optional[list[dict]] = None,
             ma_threshold: Optional[float] = None, window: int = 5, **_) -> dict:
    per_seed, holds = [], True
    for i, run in enumerate(runs):
        h = _entropy(run)
        target = run["curve"][-1].get("reg/target") if run["curve"] else None
        if target is None:  # a method without an entropy target logs no reg/target: nothing to track
            return {"holds": False, "value": None, "per_seed": per_seed, "note": f"the run of seed #{i + 1} logs "
                    "no reg/target (the arm's method sets no entropy target), so there is nothing to track"}
        target = float(target)
        half = len(h) // 2
        mean_dev = float(np.mean(h[half:]) / target - 1.0)
        ma_dev = float(np.max(np.abs(moving_average(h[half:], window) / target - 1.0)))
        seed = {"target": target, "mean_rel_dev": mean_dev, "ma_max_rel_dev": ma_dev}
        ok = abs(mean_dev) <= threshold and (ma_threshold is None or ma_dev <= ma_threshold)
        if reference is not None:
            ref = _entropy(reference[i])
            seed["reference_second_half_over_target"] = float(np.mean(ref[len(ref) // 2:]) / target)
            ok = ok and seed["reference_second_half_over_target"] < 1.0 - threshold
        seed["holds"] = ok
        per_seed.append(seed)
        holds = holds and ok
    worst = max(abs(s["mean_rel_dev"]) for s in per_seed)
    return {"holds": holds, "value": worst, "per_seed": per_seed, "ma_threshold": ma_threshold, "window": window}


PHENOMENA: dict[str, Callable[..., dict]] = {
    "grpo_gain": gain, "grpo_collapse": collapse, "fixed_explosion": explosion, "aer_tracking": tracking,
}


def judge(name: str, runs: list[dict], threshold: float, **context) -> dict:
    """Run the named check; the result always carries name, holds, value and threshold."""
    if name not in PHENOMENA:
        raise KeyError(f"unknown phenomenon {name!r}; known: {', '.join(PHENOMENA)}")
    out = PHENOMENA[name](runs, threshold, **context)
    return {"name": name, "holds": bool(out.pop("holds")), "value": out.pop("value"), "threshold": threshold, **out}
