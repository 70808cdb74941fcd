"""Sampling metrics: the unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models
Trained on Code", eq. 1): 1 - C(n-c, k) / C(n, k), computed as a running product so it is stable for
n up to thousands (no huge binomials); and percentile-bootstrap confidence intervals over units."""
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


def bootstrap_ratio_ci(numerators, denominators, *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of sum(num) / sum(den), resampling units (problems, responses) with
    replacement.  With equal denominators this is the CI of a mean."""
    import numpy as np

    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.size == 0 or resamples == 0:
        point = float(num.sum() / den.sum()) if den.sum() > 0 else float("nan")
        return point, point
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num.size, size=(resamples, num.size))
    stats = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-12)
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))
