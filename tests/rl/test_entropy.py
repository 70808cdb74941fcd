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


# ---- memory-bounded AEnt / SIREN entropies from hidden states (issue 15) ----
from pipeline.rl import peak_entropy_mask  # noqa: E402
from pipeline.rl.entropy import fused_clamped_entropy, fused_nucleus_entropy  # noqa: E402


def _inputs(seed, n=(3, 7), d=12, v=40, scale=1.0, dtype=D64):
    g = torch.Generator().manual_seed(seed)
    hidden = (torch.randn(*n, d, dtype=D64, generator=g) * scale).to(dtype).requires_grad_()
    weight = torch.randn(v, d, dtype=D64, generator=g).to(dtype).requires_grad_()
    upstream = torch.randn(*n, dtype=D64, generator=g)
    return hidden, weight, upstream


def _compare(fused_fn, naive_fn, hidden, weight, upstream, atol):
    h_f = fused_fn(hidden, weight)
    grads_f = torch.autograd.grad((h_f * upstream.to(h_f.dtype)).sum(), (hidden, weight))
    h_n = naive_fn(hidden, weight)
    grads_n = torch.autograd.grad((h_n * upstream.to(h_n.dtype)).sum(), (hidden, weight))
    assert h_f.shape == h_n.shape
    assert torch.allclose(h_f, h_n.to(h_f.dtype), atol=atol), (h_f - h_n).abs().max()
    for a, b in zip(grads_f, grads_n):
        assert torch.allclose(a, b, atol=atol), (a - b).abs().max()
    return h_f


@pytest.mark.parametrize("chunk", [1, 5, 64])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("clamp_p", [0.0, 0.33, 0.5])
def test_fused_clamped_matches_naive_values_and_gradients(chunk, temperature, clamp_p):
    hidden, weight, up = _inputs(3)
    h = _compare(lambda h, w: fused_clamped_entropy(h, w, clamp_p=clamp_p, temperature=temperature, chunk_size=chunk),
                 lambda h, w: clamped_entropy((h @ w.t()) / temperature, clamp_p=clamp_p), hidden, weight, up, 1e-12)
    assert (h > 0).all()


@pytest.mark.parametrize("chunk", [1, 5, 64])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("top_p,top_k", [(0.8, 10), (0.95, 40), (0.9, 3), (1.0, 100)])
def test_fused_nucleus_matches_naive_values_and_gradients(chunk, temperature, top_p, top_k):
    # logits of std ~3: peaked rows too, so most cases also have empty nuclei (entropy 0, gradient 0)
    hidden, weight, up = _inputs(4)
    h = _compare(lambda h, w: fused_nucleus_entropy(h, w, top_p=top_p, top_k=top_k, temperature=temperature,
                                                    chunk_size=chunk),
                 lambda h, w: nucleus_entropy((h @ w.t()) / temperature, top_p=top_p, top_k=top_k),
                 hidden, weight, up, 1e-12)
    assert (h > 0).any()


def test_fused_nucleus_covers_empty_and_nonempty_nuclei():
    """The comparison above is only meaningful if both kinds of row occur; check that they do here."""
    hidden, weight, _ = _inputs(4)
    h = fused_nucleus_entropy(hidden, weight, top_p=0.8, top_k=10, chunk_size=4)
    assert (h == 0).any() and (h > 0).any()


def test_fused_masked_entropies_gradcheck():
    hidden, weight, _ = _inputs(5, n=(4,), d=3, v=9)
    assert torch.autograd.gradcheck(lambda h, w: fused_clamped_entropy(h, w, clamp_p=0.34, chunk_size=3),
                                    (hidden, weight))
    assert torch.autograd.gradcheck(lambda h, w: fused_nucleus_entropy(h, w, top_p=0.9, top_k=5, chunk_size=3),
                                    (hidden, weight))


def test_fused_masked_entropies_float32_and_bfloat16_close_to_naive():
    hidden, weight, up = _inputs(6, n=(64,), d=32, v=500, scale=0.3, dtype=torch.float32)
    _compare(lambda h, w: fused_clamped_entropy(h, w, clamp_p=0.33, chunk_size=16),
             lambda h, w: clamped_entropy(h @ w.t(), clamp_p=0.33), hidden, weight, up, 1e-4)
    _compare(lambda h, w: fused_nucleus_entropy(h, w, top_p=0.8, top_k=100, chunk_size=16),
             lambda h, w: nucleus_entropy(h @ w.t(), top_p=0.8, top_k=100), hidden, weight, up, 1e-4)
    hb, wb = hidden.detach().bfloat16().requires_grad_(), weight.detach().bfloat16().requires_grad_()
    out = fused_clamped_entropy(hb, wb, clamp_p=0.33, chunk_size=16)
    assert out.dtype == torch.float32  # accumulated in float32 like the fused log-prob path
    assert torch.allclose(out, clamped_entropy((hb @ wb.t()).float(), clamp_p=0.33), atol=1e-4)
    out.sum().backward()
    assert hb.grad.dtype == torch.bfloat16 and wb.grad.dtype == torch.bfloat16 and torch.isfinite(wb.grad.float()).all()


def test_fused_nucleus_gives_sirens_selected_entropy_with_the_peak_mask():
    """SIREN's pipeline on [B,T]: nucleus entropy -> peak mask -> selected entropy, fused as on logits."""
    hidden, weight, _ = _inputs(7, n=(3, 9), d=12, v=60, scale=0.5)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 6:] = False

    def selected(h):
        sel = peak_entropy_mask(h, mask, 0.5)
        return (h * sel).sum(1) / sel.sum(1).clamp(min=1), sel

    want, sel_n = selected(nucleus_entropy((hidden @ weight.t()).detach(), top_p=0.8, top_k=20))
    got, sel_f = selected(fused_nucleus_entropy(hidden.detach(), weight.detach(), top_p=0.8, top_k=20, chunk_size=4))
    assert torch.equal(sel_f, sel_n) and sel_n.sum(1).min() > 0 and torch.allclose(got, want, atol=1e-12)


def test_fused_masked_entropies_reject_bad_arguments():
    hidden, weight, _ = _inputs(8)
    with pytest.raises(ValueError, match="clamp_p"):
        fused_clamped_entropy(hidden, weight, clamp_p=1.0)
    with pytest.raises(ValueError, match="top_k"):
        fused_nucleus_entropy(hidden, weight, top_p=0.8, top_k=0)


def test_policy_forward_heads_match_the_materialised_reference(tiny_model_dir):
    """SIREN's and AEnt's statistics come from heads inside the policy's forward (no [B,T,V] logits):
    they equal the reference functions on materialised logits, values and gradients."""
    from functools import partial

    from transformers import AutoModelForCausalLM

    from pipeline.models.forward import pack, response_logprobs_entropy
    from pipeline.rl.entropy import fused_clamped_entropy, fused_nucleus_entropy

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)
    batch = pack([[5, 6, 7], [8, 9]], [[10, 11, 12, 13], [14, 15]], pad_id=0)
    heads = {"c": partial(fused_clamped_entropy, clamp_p=0.33), "n": partial(fused_nucleus_entropy, top_p=0.8, top_k=50)}
    _, _, extra = response_logprobs_entropy(model, batch, temperature=0.7, chunk_size=3, heads=heads)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1] / 0.7
    m = batch.response_mask
    torch.testing.assert_close(extra["c"][m], clamped_entropy(logits, clamp_p=0.33)[m])
    torch.testing.assert_close(extra["n"][m], nucleus_entropy(logits, top_p=0.8, top_k=50)[m])
    (g_fused,) = torch.autograd.grad(extra["n"][m].sum() + extra["c"][m].sum(), model.lm_head.weight)
    (g_ref,) = torch.autograd.grad((nucleus_entropy(logits, top_p=0.8, top_k=50)[m].sum()
                                    + clamped_entropy(logits, clamp_p=0.33)[m].sum()), model.lm_head.weight)
    torch.testing.assert_close(g_fused, g_ref)
