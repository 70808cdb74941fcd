"""Methods: terms, gradients, batch statistics, state, and regression tests named after known pitfalls.

Every test that iterates methods reads the list from the registry, so a new method is covered."""
from __future__ import annotations

import threading

import pytest
import torch

from pipeline.rl import (AER, REGISTRY, Comm, Denoms, RegInputs, Siren, aggregate, build_regularizer, clamped_entropy,
                         local_comm, method_class, nucleus_entropy, peak_entropy_mask, token_covariance,
                         token_entropy)
from pipeline.rl.methods.base import global_aggregate
from tests.train.split_case import make_method

AER_KW = dict(h0=1.0, tau=0.4, lr=0.1, alpha_init=0.02, alpha_max=0.1)
KWARGS = {
    "none": {}, "grpo": {}, "fixed": {"beta": 0.01}, "aer": AER_KW,
    "aent": dict(clamp_p=0.33, lambda_init=0.002, h_low=0.15, h_high=0.24, beta=0.002, warmup_steps=0,
                 lambda_low=6e-4, lambda_high=9e-3),
    "siren": dict(beta=0.5, top_p=0.8, top_k=50, rho=0.5, anchor=0.1),
    "skywork": dict(target=5.0, coef_init=0.005, delta=5e-4, coef_min=0.0, coef_max=0.05),
    "clip_cov": dict(clip_ratio=0.2, clip_lb=-10.0, clip_ub=10.0, seed=3),
    "kl_cov": dict(kl_ratio=0.2, kl_coef=1.0),
}


def _batch(seed=0, b=4, t=6, v=12):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g).requires_grad_()
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 4:] = False
    mask[3, 2:] = False
    tokens = torch.randint(0, v, (b, t), generator=g)
    lp = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return dict(logits=logits, mask=mask, logprobs=lp, old_logprobs=lp.detach() + 0.3 * torch.randn(b, t, generator=g),
                advantages=torch.randn(b, generator=g), entropy=token_entropy(logits),
                pass_rates=torch.tensor([0.0, 0.25, 0.5, 1.0])[:b].repeat(b // 4 + 1)[:b], extra=_heads(logits))


def _heads(logits):
    """The per-token statistics the methods read, from reference (materialised-logits) functions, so the
    gradient flows back to `logits` (the fused versions are tested against these in test_entropy.py)."""
    return {"clamped_entropy": clamped_entropy(logits, clamp_p=0.33),
            "nucleus_entropy": nucleus_entropy(logits, top_p=0.8, top_k=50)}


def _fields(d):
    return {k: v for k, v in d.items() if k != "logits"}


def _rows(d, rows):
    """The samples `rows` of a batch dict (tensors and the extra heads sliced along the batch)."""
    return {k: ({n: t[rows] for n, t in v.items()} if k == "extra" else v[rows] if torch.is_tensor(v) else v)
            for k, v in d.items()}


def _inputs(d, agg="token-mean", max_len=None) -> RegInputs:
    m = d["mask"]
    denoms = Denoms(float(m.sum()), float((m.sum(1) > 0).sum()), float(m.shape[0]), max_len or m.shape[1])
    return RegInputs(agg_mode=agg, denoms=denoms, clip_low=0.2, clip_high=0.28, **_fields(d))


def _loss(reg, d, agg="token-mean"):
    inp = _inputs(d, agg)
    (ctx,) = reg.batch_context([reg.micro_stats(inp)], local_comm())
    per_tok, _ = reg.policy_loss(inp, ctx)
    out = reg.term(inp, ctx)
    return global_aggregate(per_tok, inp.mask, agg, inp.denoms) + out.term, out


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_builds_runs_backprops_and_roundtrips_state(name):
    reg = make_method(name)
    d = _batch()
    loss, _ = _loss(reg, d)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(d["logits"].grad).all() and d["logits"].grad.abs().sum() > 0
    total, count = reg.tracked(_inputs(d))
    assert count > 0
    metrics = reg.update(total / count * 0.5, step=0)
    assert all(isinstance(v, float) for v in metrics.values())
    # a fresh object loaded with the state equals the original, value by value
    fresh = make_method(name)
    fresh.load_state_dict(reg.state_dict())
    assert _plain(fresh.state_dict()) == _plain(reg.state_dict())
    if hasattr(reg, "controller"):
        assert fresh.controller.coef == reg.controller.coef and fresh.controller.updates == 1


def _plain(state):
    if isinstance(state, dict):
        return {k: _plain(v) for k, v in state.items()}
    return state.tolist() if torch.is_tensor(state) else state


def test_state_roundtrip_catches_a_lost_value_regression():
    """The old round-trip test compared keys only; a controller whose coefficient was lost passed."""
    aer = AER(**AER_KW)
    aer.update(0.0, step=0)
    fresh = AER(**AER_KW)
    assert fresh.controller.alpha != aer.controller.alpha
    fresh.load_state_dict(aer.state_dict())
    assert fresh.controller.alpha == aer.controller.alpha


def test_unknown_method():
    with pytest.raises(KeyError, match="unknown entropy method 'entropy'"):
        build_regularizer("entropy")


def test_entropy_bonus_computed_without_grad_regression():
    """Pitfall: an entropy bonus built from detached entropies trains nothing.  Ours must push entropy up."""
    for name in ("fixed", "aer", "skywork"):
        d = _batch(1)
        d["advantages"] = torch.zeros_like(d["advantages"])  # only the entropy term acts
        loss, _ = _loss(build_regularizer(name, **KWARGS[name]), d)
        (grad,) = torch.autograd.grad(loss, d["logits"])
        assert grad.abs().sum() > 0, name
        stepped = token_entropy(d["logits"].detach() - 10.0 * grad)
        assert aggregate(stepped, d["mask"], "token-mean") > aggregate(d["entropy"].detach(), d["mask"], "token-mean")


def test_bonus_scaled_by_loss_type_regression():
    """Pitfall: a token-mean bonus added to a Dr.GRPO (sum / (B * max_len)) loss is mis-scaled."""
    d = _batch(2)
    reg = build_regularizer("fixed", beta=0.1)
    inp = RegInputs(agg_mode="seq-mean-token-sum-norm", denoms=Denoms(1.0, 1.0, 4.0, 10), **_fields(d))
    want = -0.1 * d["entropy"][d["mask"]].sum() / (4 * 10)
    assert float(reg.term(inp, {}).term.detach()) == pytest.approx(float(want.detach()))
    n = float(d["mask"].sum())
    tm = reg.term(RegInputs(agg_mode="token-mean", denoms=Denoms(n, 4.0, 4.0, 6), **_fields(d)), {}).term
    assert float(tm.detach()) == pytest.approx(float(-0.1 * d["entropy"][d["mask"]].mean().detach()))


def test_controller_updated_per_micro_batch_regression():
    """Pitfall: updating the controller once per micro-batch multiplies its step size by the number of
    micro-batches.  Updates take the global statistic, once per step."""
    aer = AER(**AER_KW)
    aer.update(0.2, step=0)
    with pytest.raises(RuntimeError, match="updated twice at step 0"):
        aer.update(0.2, step=0)


def test_aer_weights_are_normalised_over_the_global_batch_regression():
    """Regression (issue 11): AER normalised its difficulty weights to mean 1 inside each micro-batch, so
    with one prompt's group per micro-batch every prompt with pass rate < 1 got weight 1."""
    aer = AER(**AER_KW)
    d = _batch(4, b=8)
    d["pass_rates"] = torch.tensor([0.0, 0.0, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0])
    whole = aer.batch_context([aer.micro_stats(_inputs(d))], local_comm())[0]["scale"]
    parts = [_rows(d, slice(i, i + 2)) for i in range(0, 8, 2)]
    scales = [c["scale"] for c in aer.batch_context([aer.micro_stats(_inputs(p)) for p in parts], local_comm())]
    assert scales == [whole] * 4 and whole == pytest.approx(8 / 3.5)
    out = aer.term(_inputs(parts[0]), {"scale": whole})
    assert out.sample_values["aer_weight"].tolist() == pytest.approx([8 / 3.5] * 2)  # d = 1, normalised globally
    local = aer.batch_context([aer.micro_stats(_inputs(parts[0]))], local_comm())[0]["scale"]
    assert local == pytest.approx(1.0) != pytest.approx(whole)  # what the per-micro-batch bug applied


def test_aer_weights_allocate_by_difficulty_and_respect_threshold_mode():
    d = _batch(4)
    aer = AER(**AER_KW)
    loss, out = _loss(aer, d)
    (grad,) = torch.autograd.grad(out.term, d["logits"])
    per_sample = grad.abs().sum(dim=(1, 2))
    assert per_sample[3] == 0  # pass rate 1.0: always solved -> no entropy push
    assert per_sample[0] > 0 and out.sample_values["aer_weight"].max() == pytest.approx(16 / 9)
    assert out.metrics["reg/target"] == pytest.approx(0.4)
    thr = AER(**AER_KW, weight_mode="threshold", threshold=0.6)
    _, out_t = _loss(thr, _batch(4))
    assert out_t.sample_values["aer_weight"].tolist() == pytest.approx([2.0, 2.0, 0.0, 0.0])


def test_aer_ema_blend():
    aer = AER(**AER_KW, ema_blend=0.5, ema_decay=0.5)
    aer.observe(["a", "b"], [1.0, 0.0])
    aer.observe(["a"], [0.0])
    blended = aer.difficulty(["a", "b", "c"], torch.tensor([0.2, 0.2, 0.2]))
    assert torch.allclose(blended, torch.tensor([0.35, 0.1, 0.2]))


def test_peak_entropy_mask_loop_equivalence():
    g = torch.Generator().manual_seed(5)
    h = torch.rand(5, 9, generator=g)
    mask = torch.rand(5, 9, generator=g) > 0.3
    mask[0] = False
    vec = peak_entropy_mask(h, mask, 0.8)
    for b in range(5):
        want = torch.zeros(9, dtype=torch.bool)
        if mask[b].any():
            q = torch.quantile(h[b][mask[b]].double(), 0.8)
            want = (h[b].double() > q) & mask[b]
        assert torch.equal(vec[b], want)


def test_siren_self_anchors_once_then_penalises_drift():
    d = _batch(6)
    siren = Siren(beta=1.0, top_p=0.95, top_k=50, rho=0.5)
    first, out = _loss(siren, {**d, "advantages": torch.zeros(4)})
    assert float(out.term.detach()) == pytest.approx(0.0) and siren.anchor == pytest.approx(out.metrics["reg/selected_entropy"])
    sharp = (d["logits"].detach() * 3).requires_grad_()
    sharper = {**d, "logits": sharp, "extra": _heads(sharp)}
    _, second = _loss(siren, sharper)
    assert float(second.term.detach()) == pytest.approx((second.metrics["reg/selected_entropy"] - siren.anchor) ** 2)
    assert float(second.term.detach()) > 0


def _split_term(reg, d, rows):
    """The method's term over micro-batches `rows` of `d`, with global denominators and one context."""
    m = d["mask"]
    denoms = Denoms(float(m.sum()), float((m.sum(1) > 0).sum()), float(m.shape[0]), m.shape[1])
    inps = [RegInputs(agg_mode="token-mean", denoms=denoms, **_fields(_rows(d, r))) for r in rows]
    ctxs = reg.batch_context([reg.micro_stats(i) for i in inps], local_comm())
    return sum(reg.term(i, c).term for i, c in zip(inps, ctxs)), inps


def test_siren_squares_the_global_selected_entropy_regression():
    """Regression (issue 11): SIREN squared the selected-entropy deviation per micro-batch; the sum of
    per-micro-batch squares differs from the square of the batch value.  Ours: the same value and
    gradient for any split."""
    d = _batch(7, b=8, t=6)
    siren = Siren(beta=1.0, top_p=0.9, top_k=50, rho=0.5, anchor=0.05)
    whole, _ = _split_term(siren, d, [slice(0, 8)])
    (g_whole,) = torch.autograd.grad(whole, d["logits"], retain_graph=True)
    split, inps = _split_term(siren, d, [slice(i, i + 2) for i in range(0, 8, 2)])
    (g_split,) = torch.autograd.grad(split, d["logits"])
    assert float(split) == pytest.approx(float(whole)) and float(whole) > 0
    torch.testing.assert_close(g_split, g_whole)
    per_micro_squares = sum((float(siren._per_seq(i).mean()) - 0.05) ** 2 for i in inps) / 4
    assert per_micro_squares != pytest.approx(float(whole))  # what the official per-micro-batch square gives


def test_cov_methods_change_only_selected_tokens_with_the_highest_covariance():
    d = _batch(7)
    inp = _inputs(d)
    n_valid = int(d["mask"].sum())
    kl = build_regularizer("kl_cov", **KWARGS["kl_cov"])
    (ctx,) = kl.batch_context([kl.micro_stats(inp)], local_comm())
    k = max(1, int(n_valid * 0.2))
    sel = ctx["select"]
    assert int(sel.sum()) == k and not sel[~d["mask"]].any()
    cov = token_covariance(d["logprobs"], d["advantages"], d["mask"])
    assert cov[sel].min() >= cov[d["mask"] & ~sel].max()  # the top k by covariance, nothing else
    clip = build_regularizer("clip_cov", **KWARGS["clip_cov"])
    (cctx,) = clip.batch_context([clip.micro_stats(inp)], local_comm())
    assert int(cctx["select"].sum()) == max(int(0.2 * n_valid), 1)
    per_tok, _ = clip.policy_loss(inp, cctx)
    assert (per_tok[cctx["select"]] == 0).all()


def test_clip_cov_never_selects_tokens_already_clipped_by_ppo():
    """verl's Clip-Cov excludes tokens the PPO clip already clipped (cov_all[clip_by_origin] = -inf)."""
    d = _batch(8)
    d["old_logprobs"] = d["logprobs"].detach() + 2.0 * torch.randn_like(d["logprobs"])  # many clipped tokens
    clip = build_regularizer("clip_cov", clip_ratio=0.9, clip_lb=-100.0, clip_ub=100.0, seed=0)
    inp = _inputs(d)
    (ctx,) = clip.batch_context([clip.micro_stats(inp)], local_comm())
    _, diag = clip.__class__.__mro__[1].policy_loss(clip, inp, {})
    assert diag["clipped"].any() and not (ctx["select"] & diag["clipped"]).any()


def test_kl_cov_unselected_tokens_use_the_unclipped_surrogate():
    d = _batch(9)
    kl = build_regularizer("kl_cov", kl_ratio=0.1, kl_coef=1.0)
    inp = _inputs(d)
    (ctx,) = kl.batch_context([kl.micro_stats(inp)], local_comm())
    per_tok, _ = kl.policy_loss(inp, ctx)
    ratio = torch.exp(d["logprobs"] - d["old_logprobs"])
    adv = d["advantages"].unsqueeze(1).expand_as(ratio)
    free = d["mask"] & ~ctx["select"]
    torch.testing.assert_close(per_tok[free], (-adv * ratio)[free])
    picked = ctx["select"]
    torch.testing.assert_close(per_tok[picked], (-adv * ratio + (d["logprobs"] - d["old_logprobs"]).abs())[picked])
    assert ((ratio[free] - 1).abs() > 0.28).any()  # the clip would have acted on these tokens


def _two_simulated_ranks(make_reg, parts):
    """Run `batch_context` on two threads joined by barrier-backed collectives, as two ranks."""
    slots, barrier, out = [None, None], threading.Barrier(2), [None, None]

    def worker(r):
        def exchange(values):
            slots[r] = list(values)
            barrier.wait()
            got = list(slots)
            barrier.wait()
            return got
        c = Comm(sum=lambda v: [sum(x) for x in zip(*exchange(v))], gather=exchange, rank=r, world=2)
        reg = make_reg()
        out[r] = reg.batch_context([reg.micro_stats(parts[r])], c)[0]

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.parametrize("name", ["clip_cov", "kl_cov"])
def test_cov_selection_split_over_ranks_equals_one_rank(name):
    """Regression: Clip-Cov/KL-Cov chose their tokens per micro-batch and rank, so the selected set (and
    its size) depended on how the batch was split.  Split over two ranks, the union is the one-rank set."""
    d = _batch(11, b=8, t=7)
    whole_inp = _inputs(d)
    make = lambda: build_regularizer(name, **KWARGS[name])  # noqa: E731
    (whole,) = make().batch_context([make().micro_stats(whole_inp)], local_comm())
    parts = [RegInputs(agg_mode="token-mean", denoms=whole_inp.denoms, clip_low=0.2, clip_high=0.28,
                       **_fields(_rows(d, s))) for s in (slice(0, 3), slice(3, 8))]
    got = _two_simulated_ranks(make, parts)
    assert torch.equal(torch.cat([g["select"] for g in got]), whole["select"])
    assert int(whole["select"].sum()) >= 1 and not whole["select"][~d["mask"]].any()


def test_methods_declare_what_generic_code_needs():
    from pipeline.config.methods import METHODS

    assert METHODS["kl_cov"].off_policy_only and not METHODS["kl_cov"].uses_ppo_clip
    assert not METHODS["clip_cov"].off_policy_only  # zeroing selected tokens acts at ratio 1
    assert method_class("siren").needs_policy_pass and set(method_class("siren")(beta=0.1, top_p=0.8, top_k=5,
                                                                                rho=0.8).heads()) == {"nucleus_entropy"}
    assert method_class("skywork").cadence == "optimizer" and method_class("aer").cadence == "rollout"
    assert method_class("grpo") is method_class("none")


def test_siren_non_finite_first_batch_does_not_poison_its_anchor():
    siren = Siren(beta=1.0, top_p=0.9, top_k=50, rho=0.5)
    (ctx,) = siren.batch_context([(float("nan"), 4.0)], local_comm())
    assert siren.anchor is None
    d = _batch(3)
    assert float(siren.term(_inputs(d), ctx).term) == 0.0  # no anchor yet: no pull
    siren.batch_context([(2.0, 4.0)], local_comm())
    assert siren.anchor == 0.5
