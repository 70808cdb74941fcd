"""The testbed's phenomena on hand-made runs: each check holds only when it holds on every seed."""
from __future__ import annotations

import pytest

from pipeline.eval.phenomena import PHENOMENA, judge, moving_average


def _run(entropies, avg=0.5, target=None):
    curve = [{"step": float(i), "entropy": h, **({"reg/target": target} if target else {})}
             for i, h in enumerate(entropies)]
    return {"curve": curve, "eval": {"avg@n": {"mean": avg}}}


def test_gain_is_judged_per_seed_against_the_base_model():
    base = {"avg@n": {"mean": 0.30}}
    ok = judge("grpo_gain", [_run([1.0], 0.45), _run([1.0], 0.41)], 0.10, base=base, benchmark="synthetic")
    assert ok["holds"] and ok["value"] == pytest.approx(0.11) and ok["per_seed"] == pytest.approx([0.15, 0.11])
    one_short = judge("grpo_gain", [_run([1.0], 0.45), _run([1.0], 0.39)], 0.10, base=base, benchmark="synthetic")
    assert not one_short["holds"]
    assert not judge("grpo_gain", [_run([1.0])], 0.1, base=None, benchmark="s")["holds"]


def test_collapse_uses_the_final_step_and_explosion_the_peak():
    runs = [_run([1.0, 0.5, 0.30]), _run([1.0, 0.4, 0.34])]
    c = judge("grpo_collapse", runs, 0.35, h0=1.0)
    assert c["holds"] and c["value"] == pytest.approx(0.34)
    assert not judge("grpo_collapse", [_run([1.0, 0.2, 0.36])], 0.35, h0=1.0)["holds"]
    e = judge("fixed_explosion", [_run([1.0, 1.7, 1.2]), _run([1.0, 1.55, 1.6])], 1.5, h0=1.0)
    assert e["holds"] and e["value"] == pytest.approx(1.6)
    assert not judge("fixed_explosion", [_run([1.0, 1.4])], 1.5, h0=1.0)["holds"]


def test_tracking_needs_the_mean_band_the_moving_average_and_the_reference_below():
    steady = [1.0] * 10 + [0.42, 0.38, 0.41, 0.39, 0.40, 0.43, 0.37, 0.40, 0.41, 0.39]
    declining = [1.0 - 0.04 * i for i in range(20)]  # second half 0.60 down to 0.24, mean 0.42: inside the band
    low = [1.0] * 10 + [0.2] * 10
    t = judge("aer_tracking", [_run(steady, target=0.4)], 0.10, reference=[_run(low)], ma_threshold=0.2, window=5)
    assert t["holds"] and t["per_seed"][0]["reference_second_half_over_target"] == pytest.approx(0.5)
    assert not judge("aer_tracking", [_run(steady, target=0.4)], 0.10, reference=[_run(declining)],
                     ma_threshold=0.2, window=5)["holds"]  # the reference sits in the band: control not visible
    drifting = [1.0] * 10 + [0.30, 0.31, 0.32, 0.34, 0.36, 0.44, 0.46, 0.48, 0.49, 0.50]
    d = judge("aer_tracking", [_run(drifting, target=0.4)], 0.10, ma_threshold=0.2, window=5)
    assert abs(d["per_seed"][0]["mean_rel_dev"]) < 0.1 and not d["holds"]  # mean fine, moving average outside


def test_tracking_an_arm_without_a_target_does_not_hold_regression():
    """An arm whose method sets no entropy target logs no reg/target; tracking raised KeyError."""
    t = judge("aer_tracking", [_run([1.0] * 10)], 0.10, reference=None, ma_threshold=0.2, window=5)
    assert not t["holds"] and t["value"] is None and "no reg/target" in t["note"]


def test_moving_average_golden_and_unknown_name():
    assert moving_average(__import__("numpy").array([1.0, 2.0, 3.0, 4.0]), 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    assert set(PHENOMENA) == {"grpo_gain", "grpo_collapse", "fixed_explosion", "aer_tracking"}
    with pytest.raises(KeyError, match="unknown phenomenon"):
        judge("entropy_bliss", [], 0.1)
