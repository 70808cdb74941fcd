"""Entropies: golden values, -inf safety, the fused memory-bounded path vs naive, clamped and nucleus."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline.rl import clamped_entropy, fused_logprob_entropy, nucleus_entropy, token_entropy

D64 = torch.float64


def test_token_entropy_golden():
    logits = torch.tensor([[[0.0, 0, 0, 0], [0, math.log(3), -1e9, -1e9]]], dtype=D64)
    h = token_entropy(logits)
    assert h[0, 0] == pytest.approx(math.log(4))
    assert h[0, 1] == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    hot = token_entropy(torch.tensor([[[0.0, math.log(3)]]], dtype=D64), temperature=2.0)
    p = torch.softmax(torch.tensor([0.0, math.log(3) / 2], dtype=D64), 0)
    assert hot[0, 0] == pytest.approx(float(-(p * p.log()).sum()))


def test_token_entropy_finite_with_mostly_neg_inf_logits():
    logits = torch.full((2, 3, 50), float("-inf"), dtype=D64)
    logits[..., 0] = 1.0
    logits[0, 0, 1] = 1.0
    logits.requires_grad_()
    h = token_entropy(logits)
    h.sum().backward()
    assert float(h[0, 0].detach()) == pytest.approx(math.log(2)) and float(h[1, 2].detach()) == 0.0
    assert torch.isfinite(h).all() and torch.isfinite(logits.grad).all()


def test_token_entropy_chunked_equals_unchunked():
    x = torch.randn(3, 5, 17, dtype=D64)
    assert torch.allclose(token_entropy(x, chunk_size=4), token_entropy(x))


def _naive(hidden, weight, targets, temperature):
    logp = torch.log_softmax((hidden @ weight.t()) / temperature, dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("chunk", [1, 7, 64])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fused_matches_naive_values_and_gradients(chunk, temperature):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 9, 16, dtype=D64, generator=g).requires_grad_()
    weight = torch.randn(50, 16, dtype=D64, generator=g).requires_grad_()
    targets = torch.randint(0, 50, (2, 9), generator=g)
    gl, ge = torch.randn(2, 9, dtype=D64, generator=g), torch.randn(2, 9, dtype=D64, generator=g)
    lp_f, h_f = fused_logprob_entropy(hidden, weight, targets, temperature=temperature, chunk_size=chunk)
    grads_f = torch.autograd.grad((lp_f * gl).sum() + (h_f * ge).sum(), (hidden, weight))
    lp_n, h_n = _naive(hidden, weight, targets, temperature)
    grads_n = torch.autograd.grad((lp_n * gl).sum() + (h_n * ge).sum(), (hidden, weight))
    assert torch.allclose(lp_f, lp_n, atol=1e-12) and torch.allclose(h_f, h_n, atol=1e-12)
    for a, b in zip(grads_f, grads_n):
        assert torch.allclose(a, b, atol=1e-12)


def test_fused_gradcheck():
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(5, 4, dtype=D64, generator=g).requires_grad_()
    weight = torch.randn(6, 4, dtype=D64, generator=g).requires_grad_()
    targets = torch.randint(0, 6, (5,), generator=g)
    assert torch.autograd.gradcheck(
        lambda h, w: fused_logprob_entropy(h, w, targets, chunk_size=2), (hidden, weight))


def test_fused_float32_close_to_naive():
    g = torch.Generator().manual_seed(2)
    hidden, weight = torch.randn(40, 32, generator=g), torch.randn(300, 32, generator=g) * 0.1
    targets = torch.randint(0, 300, (40,), generator=g)
    lp_f, h_f = fused_logprob_entropy(hidden, weight, targets, chunk_size=16)
    lp_n, h_n = _naive(hidden, weight, targets, 1.0)
    assert torch.allclose(lp_f, lp_n, atol=1e-5) and torch.allclose(h_f, h_n, atol=1e-5)


def test_clamped_entropy_golden():
    logits = torch.tensor([[[3.0, 2.0, 1.0, 0.0]]], dtype=D64, requires_grad=True)
    h = clamped_entropy(logits, clamp_p=0.5)
    p = torch.softmax(torch.tensor([3.0, 2.0], dtype=D64), 0)
    assert float(h.detach()) == pytest.approx(float(-(p * p.log()).sum()))
    h.sum().backward()
    assert logits.grad[0, 0, 2:].abs().sum() == 0 and logits.grad[0, 0, :2].abs().sum() > 0
    assert torch.allclose(clamped_entropy(logits, clamp_p=0.0), token_entropy(logits))


def test_nucleus_entropy_golden_and_empty_nucleus():
    probs = torch.tensor([0.5, 0.3, 0.2], dtype=D64)
    logits = probs.log().view(1, 1, 3)
    assert float(nucleus_entropy(logits, top_p=0.8, top_k=10)) == pytest.approx(0.0)  # 0.8 crosses: excluded
    q = torch.tensor([0.5, 0.3], dtype=D64) / 0.8
    want = float(-(q * q.log()).sum())
    assert float(nucleus_entropy(logits, top_p=0.85, top_k=10)) == pytest.approx(want)
    assert float(nucleus_entropy(logits, top_p=0.99, top_k=2)) == pytest.approx(want)  # K caps the nucleus
    peaked = torch.tensor([0.9, 0.05, 0.05], dtype=D64).log().view(1, 1, 3).requires_grad_()
    h = nucleus_entropy(peaked, top_p=0.8, top_k=10)
    h.sum().backward()
    assert float(h.detach()) == 0.0 and torch.isfinite(peaked.grad).all()
