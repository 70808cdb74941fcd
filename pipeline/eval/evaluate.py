"""Benchmark evaluation: n samples per problem, avg@n, unbiased pass@k, maj@k, CIs and every sample.

Metrics per benchmark: avg@n (mean accuracy over all samples), pass@k for k = 1, 2, 4, ... <= n (the
unbiased estimator of Chen et al. 2021, averaged over problems), maj@k (majority vote over the first k
samples' extracted answers, grouped by math-verify equivalence so "1/2" and "0.5" vote together; ties go
to the answer seen first), each with a percentile-bootstrap 95% CI over problems; verifier status
counts, mean response length and truncation rate; and the same per difficulty bucket (problem level).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from pipeline.data.prompts import format_prompt
from pipeline.data.schema import Problem
from pipeline.eval.metrics import bootstrap_ratio_ci, pass_at_k
from pipeline.rewards import answers_equivalent, score_batch
from pipeline.rollout.types import SamplingConfig
from pipeline.utils.progress import label


def ks_for(n: int) -> list[int]:
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks if ks[-1] == n else ks + [n]


def majority_correct(preds: Sequence[str | None], scores: Sequence[float], equivalent=answers_equivalent) -> float:
    """1.0 if the most common answer (by equivalence class) among `preds` is a correct one."""
    classes: list[list[int]] = []
    for i, pred in enumerate(preds):
        if pred is None:
            continue
        for members in classes:
            rep = preds[members[0]]
            if pred == rep or equivalent(pred, rep):
                members.append(i)
                break
        else:
            classes.append([i])
    if not classes:
        return 0.0
    best = max(classes, key=len)  # max keeps the first of equal-sized classes
    return float(scores[best[0]])


def sample_rows(problems: Sequence[Problem], completions, results) -> list[dict]:
    rows = []
    flat = [(p, j, c) for p, row in zip(problems, completions) for j, c in enumerate(row)]
    for (p, j, c), r in zip(flat, results):
        rows.append({"problem_id": p.id, "sample": j, "seed": c.seed, "level": p.level, "completion": c.text,
                     "extracted": r.pred if r.status != "error" else None, "score": r.score, "status": r.status,
                     "n_tokens": len(c.token_ids), "truncated": c.finish_reason == "length"})
    return rows


def summarise(rows: list[dict], n: int, *, bootstrap: int, seed: int, equivalent=answers_equivalent) -> dict:
    by_problem: dict[str, list[dict]] = {}
    for r in rows:
        by_problem.setdefault(r["problem_id"], []).append(r)
    groups = [sorted(v, key=lambda r: r["sample"]) for v in by_problem.values()]
    out = {"n_problems": len(groups), "n_samples": n, "status": dict(Counter(r["status"] for r in rows)),
           "response_len": float(np.mean([r["n_tokens"] for r in rows])) if rows else 0.0,
           "truncation_rate": float(np.mean([r["truncated"] for r in rows])) if rows else 0.0}
    per = {"avg@n": [float(np.mean([r["score"] for r in g])) for g in groups]}
    for k in ks_for(n):
        per[f"pass@{k}"] = [pass_at_k(len(g), int(sum(r["score"] for r in g)), k) for g in groups]
        per[f"maj@{k}"] = [majority_correct([r["extracted"] for r in g[:k]], [r["score"] for r in g[:k]], equivalent)
                           for g in groups]
    for name, values in per.items():
        lo, hi = bootstrap_ratio_ci(values, [1.0] * len(values), resamples=bootstrap, seed=seed)
        out[name] = {"mean": float(np.mean(values)) if values else 0.0, "ci95": [lo, hi]}
    return out


def evaluate(engine, tokenizer, problems: Sequence[Problem], *, template: str, use_chat_template: bool,
             sampling: SamplingConfig, bootstrap: int) -> tuple[list[dict], dict]:
    """Sample, grade and summarise one benchmark; returns (per-sample rows, metrics incl. per level)."""
    prompts = [format_prompt(p.problem, template, tokenizer, use_chat_template) for p in problems]
    with label("evaluate"):
        completions = engine.generate(prompts, sampling)
    flat = [c for row in completions for c in row]
    results = score_batch([c.text for c in flat], [p.answer for p in problems for _ in range(sampling.n)])
    rows = sample_rows(problems, completions, results)
    metrics = summarise(rows, sampling.n, bootstrap=bootstrap, seed=sampling.seed)
    levels = sorted({r["level"] for r in rows if r["level"] is not None})
    if levels:
        metrics["by_level"] = {str(lv): summarise([r for r in rows if r["level"] == lv], sampling.n,
                                                  bootstrap=bootstrap, seed=sampling.seed) for lv in levels}
    return rows, metrics
