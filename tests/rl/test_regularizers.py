"""Regularizers: terms, gradients, state, and regression tests named after known pitfalls."""
from __future__ import annotations

import pytest
import torch

from pipeline.rl import (AER, REGULARIZERS, RegInputs, Siren, aggregate, build_regularizer, peak_entropy_mask,
                         policy_token_losses, regularized_loss, token_entropy)

AER_KW = dict(h0=1.0, tau=0.4, lr=0.1, alpha_init=0.02, alpha_max=0.1)
ALL_KW = {
    "none": {}, "grpo": {}, "fixed": {"beta": 0.01}, "aer": AER_KW,
    "aent": dict(clamp_p=0.33, lambda_init=0.002, h_low=0.15, h_high=0.24, beta=0.002, warmup_steps=0,
                 lambda_low=6e-4, lambda_high=9e-3),
    "siren": dict(beta=0.005, top_p=0.8, top_k=50, rho=0.8),
    "skywork": dict(target=0.2, coef_init=0.005, delta=5e-4, coef_min=0.0, coef_max=0.05),
    "clip_cov": dict(clip_ratio=0.2, clip_lb=-10.0, clip_ub=10.0),
    "kl_cov": dict(kl_ratio=0.2, kl_coef=1.0),
}


def _batch(seed=0, b=4, t=6, v=12):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g).requires_grad_()
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 4:] = False
    mask[3, 2:] = False
    lp_all = torch.log_softmax(logits, -1)
    tokens = torch.randint(0, v, (b, t), generator=g)
    lp = lp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return dict(logits=logits, mask=mask, logprobs=lp, old_logprobs=lp.detach() + 0.05 * torch.randn(b, t, generator=g),
                advantages=torch.randn(b, generator=g), entropy=token_entropy(logits),
                pass_rates=torch.tensor([0.0, 0.25, 0.5, 1.0]))


@pytest.mark.parametrize("name", sorted(ALL_KW))
def test_every_method_builds_runs_backprops_and_roundtrips_state(name):
    reg = build_regularizer(name, **ALL_KW[name])
    d = _batch()
    inp = RegInputs(agg_mode="token-mean", **d)
    per_tok, _ = policy_token_losses(d["logprobs"], d["old_logprobs"], d["advantages"], d["mask"], clip_low=0.2, clip_high=0.28)
    out = reg.term(inp)
    loss = regularized_loss(per_tok, d["mask"], out, "token-mean")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(d["logits"].grad).all()
    assert out.stat_count > 0
    metrics = reg.update(out.stat_sum / out.stat_count, step=0)
    assert all(isinstance(v, float) for v in metrics.values())
    clone = build_regularizer(name, **ALL_KW[name])
    clone.load_state_dict(reg.state_dict())
    assert clone.state_dict().keys() == reg.state_dict().keys()
    assert set(REGULARIZERS) == set(ALL_KW)


def test_unknown_method():
    with pytest.raises(KeyError, match="unknown entropy method 'entropy'"):
        build_regularizer("entropy")


def test_entropy_bonus_computed_without_grad_regression():
    """Pitfall: an entropy bonus built from detached entropies trains nothing.  Ours must push entropy up."""
    for name in ("fixed", "aer", "skywork"):
        d = _batch(1)
        out = build_regularizer(name, **ALL_KW[name]).term(RegInputs(agg_mode="token-mean", **d))
        (grad,) = torch.autograd.grad(out.term, d["logits"])
        assert grad.abs().sum() > 0, name
        # a small step against the gradient of the loss term raises the mean entropy
        stepped = token_entropy(d["logits"].detach() - 10.0 * grad)
        assert aggregate(stepped, d["mask"], "token-mean") > aggregate(d["entropy"].detach(), d["mask"], "token-mean")


def test_bonus_scaled_by_loss_type_regression():
    """Pitfall: a token-mean bonus added to a Dr.GRPO (sum / (B * max_len)) loss is mis-scaled."""
    d = _batch(2)
    reg = build_regularizer("fixed", beta=0.1)
    dr = reg.term(RegInputs(agg_mode="seq-mean-token-sum-norm", max_len=10, **d)).term
    want = -0.1 * d["entropy"][d["mask"]].sum() / (4 * 10)
    assert float(dr.detach()) == pytest.approx(float(want.detach()))
    tm = reg.term(RegInputs(agg_mode="token-mean", **d)).term
    assert float(tm.detach()) == pytest.approx(float(-0.1 * d["entropy"][d["mask"]].mean().detach()))


def test_controller_updated_per_micro_batch_regression():
    """Pitfall: updating the controller once per micro-batch multiplies its step size by the number of
    micro-batches and makes alpha depend on the split.  Updates take the global statistic, once per step."""
    d = _batch(3)
    full = AER(**AER_KW)
    out = full.term(RegInputs(**d))
    full.update(out.stat_sum / out.stat_count, step=0)
    split = AER(**AER_KW)
    s = c = 0.0
    for rows in (slice(0, 1), slice(1, 4)):
        part = {k: (v[rows] if torch.is_tensor(v) else v) for k, v in d.items()}
        o = split.term(RegInputs(**part))
        s, c = s + o.stat_sum, c + o.stat_count
    split.update(s / c, step=0)
    assert split.controller.alpha == pytest.approx(full.controller.alpha)
    with pytest.raises(RuntimeError, match="updated twice at step 0"):
        split.update(s / c, step=0)


def test_aer_weights_allocate_by_difficulty():
    d = _batch(4)
    aer = AER(**AER_KW)
    out = aer.term(RegInputs(**d))
    (grad,) = torch.autograd.grad(out.term, d["logits"])
    per_sample = grad.abs().sum(dim=(1, 2))
    assert per_sample[3] == 0  # pass rate 1.0: always solved -> no entropy push
    assert per_sample[0] > 0 and out.metrics["reg/weight_max"] == pytest.approx(16 / 9)
    assert out.metrics["reg/target"] == pytest.approx(0.4)


def test_aer_ema_blend():
    aer = AER(**AER_KW, ema_blend=0.5, ema_decay=0.5)
    aer.observe(["a", "b"], [1.0, 0.0])
    aer.observe(["a"], [0.0])
    blended = aer.blended_pass_rates(["a", "b", "c"], torch.tensor([0.2, 0.2, 0.2]))
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


def test_siren_self_anchors_then_penalises_drift():
    d = _batch(6)
    siren = Siren(beta=1.0, top_p=0.95, top_k=50, rho=0.5)
    first = siren.term(RegInputs(**d))
    assert float(first.term.detach()) == pytest.approx(0.0) and siren.anchor == pytest.approx(first.metrics["reg/selected_entropy"])
    sharper = {**d, "logits": (d["logits"].detach() * 3).requires_grad_()}
    second = siren.term(RegInputs(**sharper))
    assert float(second.term.detach()) == pytest.approx((second.metrics["reg/selected_entropy"] - siren.anchor) ** 2)
    assert float(second.term.detach()) > 0


def test_cov_methods_change_only_selected_tokens():
    d = _batch(7)
    clip = build_regularizer("clip_cov", **ALL_KW["clip_cov"]).term(RegInputs(**d))
    n_valid = int(d["mask"].sum())
    assert int((clip.policy_weight == 0).sum()) == max(int(0.2 * n_valid), 1)
    kl = build_regularizer("kl_cov", **ALL_KW["kl_cov"]).term(RegInputs(**d))
    k = max(1, int(n_valid * 0.2))
    assert int((kl.policy_weight == 0).sum()) == k and int((kl.token_term != 0).sum()) == k
    assert not (kl.policy_weight == 0)[~d["mask"]].any()


def _two_simulated_ranks(make_reg, covs, masks, n_global):
    """Run `select_tokens` on two threads joined by an all-gather (a threading barrier), as two ranks."""
    import threading

    slots, barrier, out = [None, None], threading.Barrier(2), [None, None]

    def worker(r):
        def gather(values):
            slots[r] = list(values)
            barrier.wait()
            got = list(slots)
            barrier.wait()
            return got
        out[r] = make_reg().select_tokens([covs[r]], [masks[r]], n_global, rank=r, gather=gather)[0]

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
    from pipeline.rl.baselines import token_covariance

    d = _batch(11, b=8, t=7)
    cov = token_covariance(d["logprobs"], d["advantages"], d["mask"])
    make = lambda: build_regularizer(name, **{**ALL_KW[name], **({"seed": 5} if name == "clip_cov" else {})})  # noqa: E731
    n = int(d["mask"].sum())
    whole = make().select_tokens([cov], [d["mask"]], n)[0]
    parts = _two_simulated_ranks(make, [cov[:3], cov[3:]], [d["mask"][:3], d["mask"][3:]], n)
    assert torch.equal(torch.cat(parts), whole)
    assert int(whole.sum()) == max(int(0.2 * n), 1) and not whole[~d["mask"]].any()
    # per-response micro-batches selecting locally pick max(int(0.2 n_row), 1) = 1 each: 8, not 9
    local = [make().select_tokens([cov[i:i + 1]], [d["mask"][i:i + 1]], int(d["mask"][i].sum()))[0] for i in range(8)]
    assert sum(int(x.sum()) for x in local) == 8 != int(whole.sum()) == 9
