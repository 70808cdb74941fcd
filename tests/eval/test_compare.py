"""Method comparison: t intervals over seeds, honest verdicts, the report from synthetic runs."""
from __future__ import annotations

import json

import pytest

from pipeline.eval.compare import beats, mean_ci, render_markdown, summarise_method


def test_mean_ci_golden():
    m = mean_ci([1.0, 2.0, 3.0])
    half = 4.303 / 3 ** 0.5  # t(0.975, 2 df) * sd 1 / sqrt(3)
    assert m["mean"] == 2.0 and m["ci95"] == [pytest.approx(2 - half), pytest.approx(2 + half)] and m["n"] == 3
    assert mean_ci([5.0]) == {"mean": 5.0, "ci95": [5.0, 5.0], "n": 1}
    assert mean_ci([])["mean"] is None


def test_beats_is_honest():
    assert beats([0.9, 0.91, 0.92], [0.1, 0.11, 0.12]) is True
    assert beats([0.1, 0.11, 0.12], [0.9, 0.91, 0.92]) is False
    assert beats([0.5, 0.1, 0.9], [0.4, 0.6, 0.5]) is None  # overlapping noise: no claim
    assert beats([0.5], [0.4]) is None


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
