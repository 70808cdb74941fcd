"""Task difficulty as the base model's pass rate: n samples per prompt, graded by `score_batch`.

Each prompt gets n, correct, the pass rate, its Wilson 95% interval (Wilson 1927; better than the
normal interval at p near 0 or 1 with small n) and a difficulty bucket from pass-rate edges.  Optional
filters mark always-solved / never-solved prompts as not kept (Skywork-OR1 drops both); rows are never
deleted, so the counts stay auditable.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

from pipeline.data.prompts import format_prompt
from pipeline.data.schema import Problem
from pipeline.rewards import score_batch
from pipeline.rollout.types import SamplingConfig
from pipeline.utils.progress import label, progress


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bucket_names(edges: Sequence[float]) -> list[str]:
    bounds = [0.0, *edges, 1.0]
    return [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(bounds, bounds[1:])]


def bucket_of(pass_rate: float, edges: Sequence[float]) -> str:
    """Bucket label by pass rate: [0, e1), [e1, e2), ..., [ek, 1]."""
    names = bucket_names(edges)
    return names[sum(pass_rate >= e for e in edges)]


def pass_rate_rows(problems: Sequence[Problem], correct: Sequence[int], n: int, edges: Sequence[float], *,
                   drop_always_solved: bool, drop_never_solved: bool) -> list[dict]:
    rows = []
    for p, c in zip(problems, correct):
        rate = c / n
        lo, hi = wilson_interval(c, n)
        kept = not ((drop_always_solved and c == n) or (drop_never_solved and c == 0))
        rows.append({"id": p.id, "n": n, "correct": c, "pass_rate": rate, "wilson_lo": lo, "wilson_hi": hi,
                     "bucket": bucket_of(rate, edges), "level": p.level, "kept": kept})
    return rows


def estimate(engine, tokenizer, problems: Sequence[Problem], *, template: str, use_chat_template: bool,
             sampling: SamplingConfig, edges: Sequence[float], drop_always_solved: bool = False,
             drop_never_solved: bool = False, prompts_per_call: int = 64) -> tuple[list[dict], dict]:
    """Sample, grade and summarise; returns (rows, metrics)."""
    correct: list[int] = []
    statuses: Counter = Counter()
    truncated = 0
    bar = progress(total=len(problems), desc="difficulty", unit="prompt")
    for s in range(0, len(problems), prompts_per_call):
        chunk = problems[s:s + prompts_per_call]
        prompts = [format_prompt(p.problem, template, tokenizer, use_chat_template) for p in chunk]
        # a different seed stream per chunk keeps the samples of prompt i independent of chunking order
        with label("difficulty"):
            out = engine.generate(prompts, SamplingConfig(sampling.n, sampling.temperature, sampling.top_p,
                                                          sampling.max_new_tokens, sampling.seed + s))
        flat = [c for row in out for c in row]
        results = score_batch([c.text for c in flat], [p.answer for p in chunk for _ in range(sampling.n)])
        statuses.update(r.status for r in results)
        truncated += sum(c.finish_reason == "length" for c in flat)
        for i in range(len(chunk)):
            correct.append(int(sum(r.score for r in results[i * sampling.n:(i + 1) * sampling.n])))
        bar.update(len(chunk))
    bar.close()
    rows = pass_rate_rows(problems, correct, sampling.n, edges, drop_always_solved=drop_always_solved,
                          drop_never_solved=drop_never_solved)
    return rows, summarise(rows, statuses, truncated, sampling.n, edges)


def summarise(rows: list[dict], statuses: Counter, truncated: int, n: int, edges: Sequence[float]) -> dict:
    by_level: dict[str, list[float]] = {}
    for r in rows:
        by_level.setdefault(str(r["level"]), []).append(r["pass_rate"])
    hist = Counter(r["correct"] for r in rows)
    return {
        "n_prompts": len(rows), "n_samples": n, "mean_pass_rate": sum(r["pass_rate"] for r in rows) / max(len(rows), 1),
        "n_kept": sum(r["kept"] for r in rows), "n_always_solved": hist.get(n, 0), "n_never_solved": hist.get(0, 0),
        "bucket_counts": {b: sum(r["bucket"] == b for r in rows) for b in bucket_names(edges)},
        "pass_rate_by_level": {k: sum(v) / len(v) for k, v in sorted(by_level.items())},
        "histogram_correct": {str(k): hist.get(k, 0) for k in range(n + 1)},
        "verifier_status": dict(statuses), "truncation_rate": truncated / max(len(rows) * n, 1),
    }
