"""Method comparison: t intervals over seeds, honest verdicts, the report from synthetic runs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from pipeline.eval.compare import beats, mean_ci, render_markdown, summarise_method, welch_interval


def test_mean_ci_golden():
    m = mean_ci([1.0, 2.0, 3.0])
    t2 = 0.95 / (2 * 0.975 * 0.025) ** 0.5  # t(0.975, 2 df) in closed form: (2p - 1) / sqrt(2p(1 - p))
    half = t2 / 3 ** 0.5  # * sd 1 / sqrt(3)
    assert m["mean"] == 2.0 and m["ci95"] == [pytest.approx(2 - half, rel=1e-12), pytest.approx(2 + half, rel=1e-12)]
    assert m["n"] == 3
    assert mean_ci([5.0]) == {"mean": 5.0, "ci95": [5.0, 5.0], "n": 1}
    assert mean_ci([])["mean"] is None


def test_regression_t_table_fell_back_to_normal_quantile_beyond_10_df():
    """The old 10-row table used 1.96 for >= 11 seeds, an interval too narrow; t(0.975, 19 df) = 2.0930."""
    values = [float(i % 5) for i in range(20)]
    m = mean_ci(values)
    sd = float(np.std(values, ddof=1))
    assert m["ci95"][1] - m["mean"] == pytest.approx(2.093024054408 * sd / 20 ** 0.5, rel=1e-9)


def test_welch_interval_matches_scipy_ttest_and_handles_unequal_variance():
    a, b = [0.31, 0.35, 0.29, 0.40], [0.20, 0.21, 0.19]
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert welch_interval(a, b) == (pytest.approx(ref.low, rel=1e-12), pytest.approx(ref.high, rel=1e-12))
    # Welch's df (~3.3 here) is not min(n) - 1 = 2, so the interval differs from the old rule's
    old_half = 4.303 * float(np.sqrt(np.var(a, ddof=1) / 4 + np.var(b, ddof=1) / 3))
    lo, hi = welch_interval(a, b)
    assert (hi - lo) / 2 < old_half - 1e-3
    assert welch_interval([1.0, 1.0], [0.5, 0.5]) == (0.5, 0.5)  # no spread: the point difference


def test_beats_is_honest():
    assert beats([0.9, 0.91, 0.92], [0.1, 0.11, 0.12]) is True
    assert beats([0.1, 0.11, 0.12], [0.9, 0.91, 0.92]) is False
    assert beats([0.5, 0.1, 0.9], [0.4, 0.6, 0.5]) is None  # overlapping noise: no claim
    assert beats([0.5], [0.4]) is None
    assert beats([1.0, 1.0], [0.5, 0.5]) is True and beats([0.5, 0.5], [0.5, 0.5]) is None


def _run(acc, entropy):
    return {"curve": [{"step": 0.0, "entropy": 0.2, "accuracy": 0.1}, {"step": 1.0, "entropy": entropy, "accuracy": acc}],
            "eval": {"avg@n": {"mean": acc}, "pass@1": {"mean": acc}, "pass@2": {"mean": acc + 0.1},
                     "maj@1": {"mean": acc}, "by_level": {"1": {"avg@n": {"mean": acc + 0.2}}}}}


def test_summary_and_markdown_say_when_a_method_does_not_beat_grpo():
    runs = {"grpo": [_run(0.3, 0.1), _run(0.32, 0.1), _run(0.31, 0.1)],
            "aer": [_run(0.30, 0.15), _run(0.33, 0.15), _run(0.29, 0.15)]}
    table = {n: summarise_method(rs, h0=0.2) for n, rs in runs.items()}
    assert table["aer"]["final_entropy_over_h0"]["mean"] == pytest.approx(0.75)
    assert table["grpo"]["avg@n/level1"]["mean"] == pytest.approx(0.51)
    verdicts = {"grpo": "baseline", "aer": beats([0.30, 0.33, 0.29], [0.3, 0.32, 0.31])}
    md = render_markdown(table, verdicts, 0.2, "synthetic")
    assert "| aer | no difference shown |" in md and "| grpo | baseline |" in md
    json.dumps(table)  # the JSON report must be serialisable


def test_phenomenon_note_is_separated_from_the_numbers_regression():
    """Regression: a phenomenon's note was glued to the closing parenthesis ("...)no base-model ...")."""
    table = {"grpo": summarise_method([_run(0.3, 0.1)], h0=0.2)}
    phen = [{"name": "grpo_gain", "holds": False, "value": None, "threshold": 0.1, "per_seed": [],
             "note": "no base-model evaluation to compare with"}]
    md = render_markdown(table, {"grpo": "baseline"}, 0.2, "synthetic", phenomena=phen)
    assert "per seed: ): no base-model evaluation to compare with" in md
