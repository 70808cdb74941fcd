"""Controllers on synthetic entropy traces: bounds, direction, exact resume; difficulty weights."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from pipeline.rl import AEntController, AERController, SkyworkController, StepGuard, difficulty_weights


def test_aer_controller_pi_golden_steps_on_the_relative_error():
    c = AERController(0.5, alpha=0.0, lr=0.1, kp=0.5, alpha_min=0.0, alpha_max=1.0)
    assert c.update(0.4) == pytest.approx(0.02 + 0.1)    # e = 0.2: I = 0.02, plus kp e = 0.1
    assert c.update(0.5) == pytest.approx(0.02)          # on target: the integral alone
    assert c.update(0.75) == pytest.approx(0.0)          # e = -0.5: I clipped at 0, kp e negative -> 0
    assert c.integral == 0.0
    with pytest.raises(ValueError, match="target entropy must be positive"):
        AERController(0.0, lr=0.1, alpha_max=1.0)


def test_aer_controller_golden_steps():
    c = AERController(1.0, alpha=0.01, lr=0.1, alpha_min=0.0, alpha_max=0.5)
    assert c.update(0.8) == pytest.approx(0.03)   # below target: raise
    assert c.update(1.5) == pytest.approx(0.0)    # above target: lower, clipped at alpha_min
    assert c.update(-10.0) == pytest.approx(0.5)  # clipped at alpha_max


def _trace(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (1.0 + 0.8 * torch.sin(torch.arange(n) / 9.0) + 0.2 * torch.randn(n, generator=g)).tolist()


def test_aer_controller_stays_in_bounds_moves_the_right_way_and_resumes():
    c = AERController(1.0, lr=0.05, alpha_min=0.001, alpha_max=0.2)
    prev = c.alpha
    trace = _trace()
    for i, h in enumerate(trace):
        a = c.update(h)
        assert 0.001 <= a <= 0.2
        if 0.001 < a < 0.2 and 0.001 < prev < 0.2:
            assert (a - prev) * (1.0 - h) > 0 or h == 1.0
        prev = a
        if i == 99:
            snapshot = copy.deepcopy(c.state_dict())
    resumed = AERController(5.0, lr=1.0, alpha_max=1.0)
    resumed.load_state_dict(snapshot)
    for h in trace[100:]:
        resumed.update(h)
    assert resumed.state_dict() == c.state_dict()


def test_difficulty_weights_golden():
    p = torch.tensor([0.0, 0.5, 1.0, 0.5])
    assert torch.allclose(difficulty_weights(p), torch.tensor([1.0, 0.5, 0.0, 0.5]))  # raw; AER normalises
    assert torch.allclose(difficulty_weights(p, mode="threshold", threshold=0.5), torch.tensor([1.0, 1.0, 0.0, 1.0]))
    assert torch.equal(difficulty_weights(torch.ones(3)), torch.zeros(3))
    with pytest.raises(ValueError, match="unknown mode"):
        difficulty_weights(p, mode="log")


@pytest.mark.parametrize("make", [
    lambda: AERController(1.0, alpha=0.01, lr=0.1, alpha_min=0.0, alpha_max=0.5),
    lambda: AEntController(lambda_init=0.002, h_low=0.15, h_high=0.24, beta=0.002, warmup_steps=0,
                           lambda_low=6e-4, lambda_high=9e-3),
    lambda: SkyworkController(target=0.5, coef_init=0.01, delta=0.005, coef_min=0.0, coef_max=0.02),
], ids=["aer", "aent", "skywork"])
def test_nan_entropy_made_aer_alpha_nan_forever_regression(make):
    """Regression (issue 13): one non-finite entropy made AER's alpha NaN for good (the clamp passes NaN
    through).  Every controller keeps its coefficient on a non-finite statistic, counts it and warns."""
    c = make()
    c.update(0.3)
    before = c.coef
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.warns(RuntimeWarning, match="non-finite statistic"):
            assert c.update(bad) == before
    assert c.nonfinite == 3 and c.updates == 1
    assert c.update(0.1) != before  # and it keeps working afterwards
    assert math.isfinite(c.coef)


def test_aent_controller_warmup_band_and_box():
    c = AEntController(lambda_init=0.002, h_low=0.15, h_high=0.24, beta=0.002, warmup_steps=2,
                       lambda_low=6e-4, lambda_high=9e-3)
    assert c.update(0.0) == 0.002 and c.update(0.0) == 0.002           # warm-up: frozen
    assert c.update(0.05) == pytest.approx(0.002 + 0.002 * 0.10)       # below band: raise
    before = c.coef
    assert c.update(0.2) == before                                      # inside band: hold
    assert c.update(0.44) == pytest.approx(before - 0.002 * 0.2)        # above band: lower
    for _ in range(1000):
        c.update(100.0)
    assert c.coef == 6e-4
    snap = c.state_dict()
    d = AEntController(lambda_init=1, h_low=0, h_high=1, beta=1, warmup_steps=0, lambda_low=0, lambda_high=1)
    d.load_state_dict(snap)
    assert d.coef == c.coef and d.updates == c.updates


def test_skywork_controller_direction_and_gate():
    c = SkyworkController(target=0.5, coef_init=0.01, delta=0.005, coef_min=0.0, coef_max=0.02)
    assert c.active  # before any observation the bonus is on
    assert c.update(0.3) == pytest.approx(0.015) and c.active
    assert c.update(0.7) == pytest.approx(0.01) and not c.active
    for _ in range(10):
        c.update(0.1)
    assert c.coef == 0.02


def test_step_guard_refuses_repeated_step():
    g = StepGuard()
    g.check(0)
    g.check(1)
    with pytest.raises(RuntimeError, match="not per micro-batch"):
        g.check(1)
