"""The comparison regularizers that need more than token entropies: SIREN, Skywork, Clip-Cov, KL-Cov.

* SIREN (arXiv 2509.25133): nucleus entropy (top-p inside top-K), a peak-entropy mask per response
  (tokens strictly above the response's rho-quantile of nucleus entropy, padding ignored), the selected
  entropy aggregated seq-mean-token-mean, and loss += beta (H_sel - H0_sel)^2 with H0_sel measured once
  on the initial policy (given, or taken from the first micro-batch).  The paper pairs it with Dr.GRPO.
* Skywork-OR1 adaptive entropy (as in TRL): loss -= coef H while H <= target; coef steps +-delta.
* Clip-Cov / KL-Cov (Cui et al., arXiv 2505.22617, losses as in verl): per-token covariance
  (A - mean A)(logp - mean logp); Clip-Cov drops the policy gradient of a random clip_ratio fraction of
  tokens whose covariance lies in (lb, ub); KL-Cov replaces the loss of the top kl_ratio fraction by
  covariance with -A r + kl_coef |logp - old|.  verl selects per micro-batch; here the trainer selects
  once per rollout batch over every micro-batch and rank (`select_tokens` with a gather across ranks,
  from the rollout policy's log-probs), as the paper describes, and passes the selection in
  (`RegInputs.cov_select`); it then stays fixed over the update epochs.  Ties at KL-Cov's k-th value
  are all selected.  Without a selection, `term` selects within its own micro-batch.
"""
from __future__ import annotations

from typing import Callable, Optional

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
    """[B,T] covariance contributions (A - mean A)(logp - mean logp), -inf on padding; `means` default
    to this batch's own."""
    m = mask.bool()
    adv = (advantages.unsqueeze(1) if advantages.dim() == 1 else advantages).expand_as(logprobs).detach()
    lp = logprobs.detach()
    if means is None:
        n = m.sum().clamp(min=1)
        means = (float(masked(adv, m).sum() / n), float(masked(lp, m).sum() / n))
    cov = (adv - means[0]) * (lp - means[1])
    return cov.masked_fill(~m, float("-inf"))


Gather = Callable[[list], list]  # this rank's list -> every rank's list, in rank order


def _local_gather(values: list) -> list:
    return [values]


def clip_cov_select(candidates: torch.Tensor, counts: list[int], rank: int, n_clip: int,
                    generator: torch.Generator) -> torch.Tensor:
    """candidates [N] bool (this rank's tokens with lb < cov < ub); counts: candidates on every rank ->
    [N] bool, this rank's share of n_clip tokens drawn uniformly without replacement from all ranks'
    candidates.  Every rank holds the same generator state, so all draw the same global sample."""
    picks = torch.randperm(sum(counts), generator=generator)[:n_clip]
    offset = sum(counts[:rank])
    local = picks[(picks >= offset) & (picks < offset + counts[rank])] - offset
    out = torch.zeros_like(candidates, dtype=torch.bool)
    out[candidates.nonzero().squeeze(1).cpu()[local].to(out.device)] = True
    return out


def kl_cov_select(cov: torch.Tensor, gathered_top: torch.Tensor, k: int) -> torch.Tensor:
    """cov [N] this rank's token covariances; gathered_top [M] every rank's local top-k values ->
    [N] bool, the global top k (all ties at the k-th value)."""
    if k == 0 or gathered_top.numel() == 0:
        return torch.zeros_like(cov, dtype=torch.bool)
    return cov >= gathered_top.topk(min(k, gathered_top.numel())).values[-1]


def _split_selection(selected: torch.Tensor, masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Scatter a flat [N] selection over valid tokens back into per-micro-batch [B,T] masks."""
    out, start = [], 0
    for m in masks:
        n = int(m.sum())
        out.append(torch.zeros_like(m, dtype=torch.bool).masked_scatter(m.bool(), selected[start:start + n].to(m.device)))
        start += n
    return out


class ClipCov(Regularizer):
    name = "clip_cov"

    def __init__(self, *, clip_ratio: float, clip_lb: float, clip_ub: float, seed: int = 0) -> None:
        super().__init__()
        self.clip_ratio, self.clip_lb, self.clip_ub = clip_ratio, clip_lb, clip_ub
        self.generator = torch.Generator().manual_seed(seed)

    def select_tokens(self, covs: list[torch.Tensor], masks: list[torch.Tensor], n_global: int, rank: int = 0,
                      gather: Gather = _local_gather) -> list[torch.Tensor]:
        """covs, masks: [B,T] per micro-batch; n_global valid tokens over all ranks -> [B,T] bool each."""
        flat = torch.cat([c[m.bool()] for c, m in zip(covs, masks)])
        candidates = (flat > self.clip_lb) & (flat < self.clip_ub)
        counts = [c[0] for c in gather([int(candidates.sum())])]
        n_clip = max(int(self.clip_ratio * n_global), 1)
        return _split_selection(clip_cov_select(candidates, counts, rank, n_clip, self.generator), masks)

    def term(self, inp):
        s, c = _entropy_stat(inp.entropy, inp.mask)
        select = inp.cov_select
        if select is None:
            cov = token_covariance(inp.logprobs, inp.advantages, inp.mask)
            select = self.select_tokens([cov], [inp.mask], int(inp.mask.bool().sum()))[0]
        weight = (~select).to(inp.logprobs.dtype)
        return RegOutput(inp.entropy.new_zeros(()), s, c, {"reg/cov_tokens": float(select.sum())},
                         policy_weight=weight)

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

    def select_tokens(self, covs: list[torch.Tensor], masks: list[torch.Tensor], n_global: int, rank: int = 0,
                      gather: Gather = _local_gather) -> list[torch.Tensor]:
        """covs, masks: [B,T] per micro-batch; n_global valid tokens over all ranks -> [B,T] bool each."""
        del rank  # the top k is the same set whichever rank computes it
        flat = torch.cat([c[m.bool()] for c, m in zip(covs, masks)])
        k = max(1, int(n_global * self.kl_ratio)) if n_global else 0
        top = flat.topk(min(k, flat.numel())).values.tolist()
        gathered = torch.tensor([v for part in gather(top) for v in part], dtype=flat.dtype)
        return _split_selection(kl_cov_select(flat, gathered.to(flat.device), k), masks)

    def term(self, inp):
        s, c = _entropy_stat(inp.entropy, inp.mask)
        select = inp.cov_select
        if select is None:
            cov = token_covariance(inp.logprobs, inp.advantages, inp.mask)
            select = self.select_tokens([cov], [inp.mask], int(inp.mask.bool().sum()))[0]
        rows, cols = select.nonzero(as_tuple=True)
        adv = (inp.advantages.unsqueeze(1) if inp.advantages.dim() == 1 else inp.advantages).expand_as(inp.logprobs)
        lp, old = inp.logprobs[rows, cols], inp.old_logprobs[rows, cols]
        replaced = -adv[rows, cols] * torch.exp(lp - old) + self.kl_coef * (lp - old).abs()
        token_term = torch.zeros_like(inp.logprobs).index_put((rows, cols), replaced)
        return RegOutput(inp.entropy.new_zeros(()), s, c, {"reg/cov_tokens": float(select.sum())},
                         policy_weight=(~select).to(inp.logprobs.dtype), token_term=token_term)
