"""Exact dedup by normalised text and n-gram decontamination against benchmarks.

Decontamination follows the common practice (e.g. the Tulu/OLMo and DeepSeekMath recipes): a training
problem is dropped when it shares any word n-gram (default 13) with a benchmark problem; problems
shorter than n words count as contaminating when their whole normalised text appears in a training
problem as a contiguous run of words.
"""
from __future__ import annotations

from typing import Iterable

from pipeline.data.schema import Problem, normalize_text


def dedup(problems: list[Problem]) -> tuple[list[Problem], int]:
    """Keep the first occurrence of each normalised problem text; returns (kept, n_dropped)."""
    seen: set[str] = set()
    kept = []
    for p in problems:
        key = normalize_text(p.problem)
        if key not in seen:
            seen.add(key)
            kept.append(p)
    return kept, len(problems) - len(kept)


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of the normalised text; a text shorter than n words is one whole-text gram."""
    words = normalize_text(text).split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _windows(words: list[str], lengths: set[int]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + k]) for k in lengths for i in range(len(words) - k + 1)}


def decontaminate(train: list[Problem], references: Iterable[Problem], n: int = 13
                  ) -> tuple[list[Problem], list[tuple[Problem, str]]]:
    """Drop training problems sharing an n-gram with any reference; returns (kept, [(dropped, ref_id)])."""
    index: dict[tuple[str, ...], str] = {}
    for ref in references:
        for g in ngrams(ref.problem, n):
            index.setdefault(g, ref.id)
    short = {len(g) for g in index if len(g) < n}  # whole texts of short references
    kept, dropped = [], []
    for p in train:
        grams = ngrams(p.problem, n) | _windows(normalize_text(p.problem).split(), short)
        hit = next((index[g] for g in grams if g in index), None)
        if hit is None:
            kept.append(p)
        else:
            dropped.append((p, hit))
    return kept, dropped
