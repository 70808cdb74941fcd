"""Unbiased pass@k against brute-force enumeration and exact rational arithmetic."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from pipeline.eval import pass_at_k


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
def test_matches_brute_force_enumeration(n):
    for c in range(n + 1):
        samples = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(range(n), k))
            brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


@pytest.mark.parametrize("n,c,k", [(1024, 1, 1), (1024, 3, 512), (1024, 100, 16), (1000, 999, 1), (1024, 0, 1024)])
def test_stable_for_large_n(n, c, k):
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9, abs=1e-12)


def test_edges_and_errors():
    assert pass_at_k(10, 8, 3) == 1.0  # n - c < k
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(16, 4, 1) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
