"""The comparison regularizers that need more than token entropies: SIREN, Skywork, Clip-Cov, KL-Cov.

* SIREN (arXiv 2509.25133): nucleus entropy (top-p inside top-K), a peak-entropy mask per response
  (tokens strictly above the response's rho-quantile of nucleus entropy, padding ignored), the selected
  entropy aggregated seq-mean-token-mean, and loss += beta (H_sel - H0_sel)^2 with H0_sel measured once
  on the initial policy (given, or taken from the first micro-batch).  The paper pairs it with Dr.GRPO.
* Skywork-OR1 adaptive entropy (as in TRL): loss -= coef H while H <= target; coef steps +-delta.
* Clip-Cov / KL-Cov (Cui et al., arXiv 2505.22617, following verl's implementation): per-token
  covariance (A - mean A)(logp - mean logp); Clip-Cov drops the policy gradient of a random
  clip_ratio fraction of tokens whose covariance lies in (lb, ub); KL-Cov replaces the loss of the top
  kl_ratio fraction by covariance with -A r + kl_coef |logp - old|.  Means may be passed in globally.
"""
from __future__ import annotations

from typing import Optional

import torch

from pipeline.rl.controllers import SkyworkController
from pipeline.rl.entropy import nucleus_entropy
from pipeline.rl.losses import aggregate, masked
from pipeline.rl.regularizers import Regularizer, RegInputs, RegOutput, _entropy_stat


def peak_entropy_mask(entropy: torch.Tensor, mask: torch.Tensor, rho: float) -> torch.Tensor:
    """[B,T] bool: tokens whose entropy is strictly above their response's rho-quantile (linear
    interpolation over valid tokens only)."""
    m = mask.bool()
    h = entropy.detach().to(torch.float64).masked_fill(~m, float("nan"))
    q = torch.nanquantile(h, rho, dim=1, keepdim=True)
    return (h > q) & m


class Siren(Regularizer):
    name = "siren"
    needs_logits = True

    def __init__(self, *, beta: float, top_p: float, top_k: int, rho: float, anchor: Optional[float] = None) -> None:
        super().__init__()
        self.beta, self.top_p, self.top_k, self.rho = beta, top_p, top_k, rho
        self.anchor = anchor

    def selected_entropy(self, logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (per-sequence mean selected nucleus entropy [B], has-selection [B] bool)."""
        h = nucleus_entropy(logits, top_p=self.top_p, top_k=self.top_k)
        sel = peak_entropy_mask(h, mask, self.rho)
        counts = sel.sum(dim=1)
        per_seq = masked(h, sel).sum(dim=1) / counts.clamp(min=1)
        return per_seq, counts > 0

    def term(self, inp: RegInputs) -> RegOutput:
        if inp.logits is None:
            raise ValueError("SIREN needs logits [B,T,V] for the nucleus entropy")
        per_seq, has = self.selected_entropy(inp.logits, inp.mask)
        n = has.sum()
        h_sel = (per_seq * has).sum() / n.clamp(min=1)
        if self.anchor is None:
            self.anchor = float(h_sel.detach())  # self-anchoring on the initial policy's first batch
        term = self.beta * (h_sel - self.anchor) ** 2 if n > 0 else h_sel * 0.0
        return RegOutput(term, float((per_seq * has).sum().detach()), float(n),
                         {"reg/coef": self.beta, "reg/target": self.anchor, "reg/selected_entropy": float(h_sel.detach())})

    def state_dict(self):
        return {**super().state_dict(), "anchor": self.anchor}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.anchor = state["anchor"]


class Skywork(Regularizer):
    name = "skywork"

    def __init__(self, **controller_kwargs) -> None:
        super().__init__()
        self.controller = SkyworkController(**controller_kwargs)

    def term(self, inp):
        s, c = _entropy_stat(inp.entropy, inp.mask)
        coef = self.controller.coef if self.controller.active else 0.0
        bonus = aggregate(inp.entropy, inp.mask, inp.agg_mode, max_len=inp.max_len)
        return RegOutput(-coef * bonus, s, c, {"reg/coef": coef, "reg/target": self.controller.target})

    def _update(self, value):
        return {"reg/coef": self.controller.update(value), "reg/target": self.controller.target, "reg/tracked": value}

    def state_dict(self):
        return {**super().state_dict(), "controller": self.controller.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])


def token_covariance(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                     means: Optional[tuple[float, float]] = None) -> torch.Tensor:
    """[B,T] covariance contributions (A - mean A)(logp - mean logp), -inf on padding."""
    m = mask.bool()
    adv = (advantages.unsqueeze(1) if advantages.dim() == 1 else advantages).expand_as(logprobs).detach()
    lp = logprobs.detach()
    if means is None:
        n = m.sum().clamp(min=1)
        means = (float(masked(adv, m).sum() / n), float(masked(lp, m).sum() / n))
    cov = (adv - means[0]) * (lp - means[1])
    return cov.masked_fill(~m, float("-inf"))


class ClipCov(Regularizer):
    name = "clip_cov"

    def __init__(self, *, clip_ratio: float, clip_lb: float, clip_ub: float, seed: int = 0) -> None:
        super().__init__()
        self.clip_ratio, self.clip_lb, self.clip_ub = clip_ratio, clip_lb, clip_ub
        self.generator = torch.Generator().manual_seed(seed)

    def term(self, inp):
        s, c = _entropy_stat(inp.entropy, inp.mask)
        cov = token_covariance(inp.logprobs, inp.advantages, inp.mask, inp.cov_means)
        candidates = torch.nonzero((cov > self.clip_lb) & (cov < self.clip_ub)).cpu()
        n_clip = max(int(self.clip_ratio * float(inp.mask.bool().sum())), 1)
        weight = torch.ones_like(cov)
        if len(candidates):
            pick = candidates[torch.randperm(len(candidates), generator=self.generator)[:n_clip]]
            weight[pick[:, 0], pick[:, 1]] = 0.0
        n_dropped = float((weight == 0).sum())
        return RegOutput(inp.entropy.new_zeros(()), s, c, {"reg/cov_tokens": n_dropped}, policy_weight=weight)

    def state_dict(self):
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])


class KLCov(Regularizer):
    name = "kl_cov"

    def __init__(self, *, kl_ratio: float, kl_coef: float) -> None:
        super().__init__()
        self.kl_ratio, self.kl_coef = kl_ratio, kl_coef

    def term(self, inp):
        s, c = _entropy_stat(inp.entropy, inp.mask)
        cov = token_covariance(inp.logprobs, inp.advantages, inp.mask, inp.cov_means)
        n_valid = int(inp.mask.bool().sum())
        k = max(1, int(n_valid * self.kl_ratio)) if n_valid else 0
        weight = torch.ones_like(cov)
        token_term = torch.zeros_like(inp.logprobs)
        if k:
            flat = cov.reshape(-1).topk(k).indices
            rows, cols = flat // cov.shape[1], flat % cov.shape[1]
            adv = (inp.advantages.unsqueeze(1) if inp.advantages.dim() == 1 else inp.advantages).expand_as(cov)
            lp, old = inp.logprobs[rows, cols], inp.old_logprobs[rows, cols]
            replaced = -adv[rows, cols] * torch.exp(lp - old) + self.kl_coef * (lp - old).abs()
            weight[rows, cols] = 0.0
            token_term = token_term.index_put((rows, cols), replaced)
        return RegOutput(inp.entropy.new_zeros(()), s, c, {"reg/cov_tokens": float(k)},
                         policy_weight=weight, token_term=token_term)
