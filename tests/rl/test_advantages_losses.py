"""GRPO advantages, aggregation modes and the clipped policy loss: golden values, padding, loops."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline.rl import aggregate, clipped_policy_loss, grpo_advantages, policy_token_losses



@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_grpo_advantages_golden():
    r = torch.tensor([1.0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1])
    adv = grpo_advantages(r, 4)
    s = 0.5 / math.sqrt(1 / 3)
    assert torch.allclose(adv, torch.tensor([1.5, -0.5, -0.5, -0.5, s, s, -s, -s, 0, 0, 0, 0]), atol=1e-5)
    dr = grpo_advantages(r, 4, scale_by_std=False)
    assert torch.allclose(dr, torch.tensor([0.75, -0.25, -0.25, -0.25, 0.5, 0.5, -0.5, -0.5, 0, 0, 0, 0]))


def test_grpo_advantages_loop_equivalence_and_errors():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(24, generator=g)
    vec = grpo_advantages(r, 6)
    loop = torch.cat([(c - c.mean()) / (c.std(unbiased=True) + 1e-6) for c in r.split(6)])
    assert torch.allclose(vec, loop)
    with pytest.raises(ValueError, match="do not split into groups of 5"):
        grpo_advantages(r, 5)


VALUES = torch.tensor([[1.0, 2, 3], [4, 0, 0]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


@pytest.mark.parametrize("mode,expected", [("token-mean", 2.5), ("seq-mean-token-mean", 3.0),
                                           ("seq-mean-token-sum-norm", 10 / 6)])
def test_aggregate_golden(mode, expected):
    assert float(aggregate(VALUES, MASK, mode)) == pytest.approx(expected)


def test_aggregate_dr_grpo_max_len_and_empty_rows():
    assert float(aggregate(VALUES, MASK, "seq-mean-token-sum-norm", max_len=5)) == pytest.approx(1.0)
    mask = torch.tensor([[1, 1, 1], [0, 0, 0]])
    assert float(aggregate(VALUES, mask, "seq-mean-token-mean")) == pytest.approx(2.0)
    assert float(aggregate(VALUES, torch.zeros_like(mask), "token-mean")) == 0.0
    with pytest.raises(ValueError, match="unknown aggregation mode"):
        aggregate(VALUES, MASK, "mean")


def test_aggregate_loop_equivalence():
    g = torch.Generator().manual_seed(1)
    v, m = torch.randn(5, 7, generator=g), torch.rand(5, 7, generator=g) > 0.4
    m[2] = False
    rows = [v[i][m[i]] for i in range(5) if m[i].any()]
    assert float(aggregate(v, m, "seq-mean-token-mean")) == pytest.approx(sum(float(r.mean()) for r in rows) / len(rows))
    assert float(aggregate(v, m, "token-mean")) == pytest.approx(float(v[m].mean()))


def test_clipped_loss_golden_and_clip_higher():
    old = torch.zeros(1, 3)
    lp = torch.log(torch.tensor([[1.5, 0.5, 0.5]]))
    adv = torch.tensor([[1.0, -1.0, 1.0]])
    mask = torch.ones(1, 3)
    loss, m = clipped_policy_loss(lp, old, adv, mask, clip_low=0.2, clip_high=0.2, agg_mode="token-mean")
    assert float(loss) == pytest.approx((-1.2 + 0.8 - 0.5) / 3)
    assert m["clip_frac"] == pytest.approx(2 / 3) and m["clip_frac_high"] == pytest.approx(1 / 3)
    assert m["clip_frac_low"] == pytest.approx(1 / 3)
    higher, _ = clipped_policy_loss(lp, old, adv, mask, clip_low=0.2, clip_high=0.28, agg_mode="token-mean")
    assert float(higher) == pytest.approx((-1.28 + 0.8 - 0.5) / 3)


def test_first_update_ratio_is_one_and_gradient_is_minus_advantage():
    lp = torch.log(torch.tensor([[0.3, 0.6]])).requires_grad_()
    loss, m = clipped_policy_loss(lp, lp.detach(), torch.tensor([2.0]), torch.ones(1, 2), clip_low=0.2,
                                  clip_high=0.2, agg_mode="token-mean")
    loss.backward()
    assert m["ratio_mean"] == 1.0 and m["clip_frac"] == 0.0 and m["approx_kl"] == 0.0
    assert torch.allclose(lp.grad, torch.tensor([[-1.0, -1.0]]))


def test_clipped_loss_loop_equivalence():
    g = torch.Generator().manual_seed(2)
    lp, old = torch.randn(4, 6, generator=g) * 0.3, torch.randn(4, 6, generator=g) * 0.3
    adv, mask = torch.randn(4, generator=g), torch.rand(4, 6, generator=g) > 0.3
    per_tok, _ = policy_token_losses(lp, old, adv, mask, clip_low=0.2, clip_high=0.3)
    for b in range(4):
        for t in range(6):
            r = math.exp(float(lp[b, t] - old[b, t]))
            want = max(-float(adv[b]) * r, -float(adv[b]) * min(max(r, 0.8), 1.3)) if mask[b, t] else 0.0
            assert float(per_tok[b, t]) == pytest.approx(want)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_padding_invariance_with_garbage(mode):
    """Extra padded columns holding inf/NaN change neither the loss nor the gradient."""
    g = torch.Generator().manual_seed(3)
    lp = (torch.randn(3, 4, generator=g) * 0.2).requires_grad_()
    old, adv = torch.randn(3, 4, generator=g) * 0.2, torch.randn(3, generator=g)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    base, _ = clipped_policy_loss(lp, old, adv, mask, clip_low=0.2, clip_high=0.28, agg_mode=mode, max_len=8)
    (gb,) = torch.autograd.grad(base, lp)
    pad = torch.full((3, 3), float("nan"))
    lp2 = torch.cat([lp, pad], 1)
    old2 = torch.cat([old, torch.full((3, 3), float("inf"))], 1)
    mask2 = torch.cat([mask, torch.zeros(3, 3, dtype=mask.dtype)], 1)
    padded, _ = clipped_policy_loss(lp2, old2, adv, mask2, clip_low=0.2, clip_high=0.28, agg_mode=mode, max_len=8)
    (gp,) = torch.autograd.grad(padded, lp)
    assert torch.isfinite(padded) and float(padded.detach()) == pytest.approx(float(base.detach()))
    assert torch.allclose(gb, gp)
