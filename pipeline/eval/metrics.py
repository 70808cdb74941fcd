"""Sampling metrics: the unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models
Trained on Code", eq. 1): 1 - C(n-c, k) / C(n, k), computed as a running product so it is stable for
n up to thousands (no huge binomials)."""
from __future__ import annotations


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples (drawn without replacement from n, c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong
