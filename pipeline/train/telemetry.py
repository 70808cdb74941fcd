"""Per-step training telemetry: what researchers watch to see entropy track its target.

`step_metrics` turns every rank's share of a rollout batch and its update into flat metrics (reward,
accuracy overall and per difficulty bucket, entropy mean/p10/p50/p90 and for correct vs wrong responses,
response length, truncation, and per-bucket means of any per-sample values the method reports, such as
AER's applied weights).  `StepLog` keeps the rows, rewrites `plots/train.csv` atomically
each step (truncated on resume) and draws the entropy and coefficient curves with the target band.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

import numpy as np

from pipeline.utils import plots
from pipeline.utils.io import atomic_open


def step_metrics(shards: list[dict]) -> dict[str, float]:
    """Metrics of one step over every rank's shard.  Each shard: rewards, buckets, lengths, truncated (per
    sample), token_entropy (per sample, its tokens' entropies under the rollout policy) and sample_values
    (name -> per-sample values a method reports, e.g. AER's applied weights; logged per bucket)."""
    cat = lambda key: [x for s in shards for x in s[key]]  # noqa: E731
    rewards, buckets, token_entropy = cat("rewards"), cat("buckets"), cat("token_entropy")
    out = {"samples": float(len(rewards)), "reward_mean": float(np.mean(rewards)),
           "accuracy": float(np.mean([r > 0 for r in rewards])),
           "response_len": float(np.mean(cat("lengths"))), "truncation_rate": float(np.mean(cat("truncated")))}
    flat = [h for row in token_entropy for h in row]
    if flat:
        out["entropy"] = float(np.mean(flat))
        for q in (10, 50, 90):
            out[f"entropy_p{q}"] = float(np.percentile(flat, q))
    for label, want in (("correct", True), ("wrong", False)):
        toks = [h for row, r in zip(token_entropy, rewards) if (r > 0) == want for h in row]
        if toks:
            out[f"entropy_{label}"] = float(np.mean(toks))
    values = {k: [x for s in shards for x in s["sample_values"].get(k, [])] for s0 in shards[:1]
              for k in s0["sample_values"]}
    for bucket in sorted(set(buckets)):
        idx = [i for i, b in enumerate(buckets) if b == bucket]
        out[f"accuracy/{bucket}"] = float(np.mean([rewards[i] > 0 for i in idx]))
        for name, vals in values.items():
            if len(vals) == len(rewards):
                out[f"{name}/{bucket}"] = float(np.mean([vals[i] for i in idx]))
    return out


def first_nonzero_step(rows: list[dict], key: str) -> Optional[int]:
    """The first logged step at which `key` (e.g. a controller's coefficient) is non-zero, else None."""
    return next((int(r["step"]) for r in rows if isinstance(r.get(key), (int, float)) and r[key] != 0), None)


class StepLog:
    def __init__(self, csv_path: str | Path, resume_step: int = 0) -> None:
        self.path = Path(csv_path)
        self.rows: list[dict] = []
        if resume_step and self.path.is_file():
            with open(self.path, newline="") as fh:
                rows = [{**{k: _num(v) for k, v in r.items()}, "step": int(float(r["step"]))} for r in csv.DictReader(fh)]
            self.rows = [r for r in rows if r["step"] < resume_step]

    def append(self, row: dict) -> None:
        self.rows.append(row)
        cols = ["step"] + sorted({k for r in self.rows for k in r} - {"step"})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols)
        writer.writeheader()
        writer.writerows(self.rows)
        with atomic_open(self.path) as fh:
            fh.write(buf.getvalue())

    def plot(self, out_dir: str | Path, target: Optional[float], band: Optional[tuple[float, float]], *,
             method: str = "", seed: Optional[int] = None, h0: Optional[float] = None) -> list[Path]:
        """entropy.png (with H0, the target and its +-10% band, or the method's own band) and coef.png, each
        titled with the method and seed; returns the written paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        steps = [r["step"] for r in self.rows]
        run = ", ".join(x for x in (method, f"seed {seed}" if seed is not None else "") if x) or "training run"
        paths = []
        for key, name, title, ylabel in (
                ("entropy", "entropy.png", "token entropy", "mean token entropy (nats/token)"),
                ("reg/coef", "coef.png", "entropy coefficient", "entropy coefficient (loss weight, unitless)")):
            fig, ax = plots.figure((6.5, 3.6))
            ax.plot(steps, [r.get(key, float("nan")) for r in self.rows], marker="." if len(steps) < 30 else None,
                    label=key)
            if key == "entropy" and h0 is not None:
                ax.axhline(h0, color="grey", linestyle=":", label=f"H0 = {h0:.3g} (base model)")
            if key == "entropy" and band is not None:
                ax.axhspan(band[0], band[1], alpha=0.2, color="green",
                           label=f"target band [{band[0]:.3g}, {band[1]:.3g}]")
            elif key == "entropy" and target is not None:
                ax.axhspan(0.9 * target, 1.1 * target, alpha=0.15, color="green", label="target +-10%")
            if key == "entropy" and target is not None:
                ax.axhline(target, color="green", linestyle="--", label=f"target = {target:.3g}")
            ax.set_title(f"{title} per step ({run})", fontsize=10)
            ax.set_xlabel("training step")
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=7)
            paths.append(plots.save(fig, out_dir / name))
        return paths


def _num(v: str):
    """Inverse of the CSV writer, so a resumed log rewrites earlier rows byte for byte."""
    if v in ("", None):
        return ""
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v
