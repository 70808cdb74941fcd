"""What Clip-Cov and KL-Cov (Cui et al. 2025, arXiv 2505.22617) share: token covariances and global selection.

cov_it = (A_it - mean A)(logp_it - mean logp) over the valid tokens, with the current policy's log-probs
(detached), as verl's `compute_policy_loss_clip_cov` / `_kl_cov` compute it.  verl computes the means,
the count and the selection inside each micro-batch on each GPU, so the selected set depends on the
packing; here the means come from the global mini-batch (all micro-batches and ranks) and the selection is
made over it, from a no-grad pass of the current policy before any backward (`needs_policy_pass`).
"""
from __future__ import annotations

from typing import Callable

import torch

from pipeline.rl.losses import masked
from pipeline.rl.methods.base import Comm, RegInputs


def token_covariance(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                     means: tuple[float, float] | None = None) -> torch.Tensor:
    """[B,T] covariance contributions (A - mean A)(logp - mean logp), -inf on padding; `means` (of A and
    logp over valid tokens) default to this batch's own."""
    m = mask.bool()
    adv = (advantages.unsqueeze(1) if advantages.dim() == 1 else advantages).expand_as(logprobs).detach()
    lp = logprobs.detach()
    if means is None:
        n = m.sum().clamp(min=1)
        means = (float(masked(adv, m).sum() / n), float(masked(lp, m).sum() / n))
    cov = (adv - means[0]) * (lp - means[1])
    return cov.masked_fill(~m, float("-inf"))


def global_covariances(inputs: list[RegInputs], comm: Comm) -> tuple[list[torch.Tensor], int]:
    """Covariances [B,T] of every micro-batch centred on the global mini-batch's means, and the global
    number of valid tokens."""
    adv_sum = lp_sum = n = 0.0
    for inp in inputs:
        m = inp.mask.bool()
        adv = inp.advantages.unsqueeze(1).expand_as(inp.logprobs)
        adv_sum += float(masked(adv.to(torch.float64), m).sum())
        lp_sum += float(masked(inp.logprobs.detach().to(torch.float64), m).sum())
        n += float(m.sum())
    a, lp, c = comm.sum([adv_sum, lp_sum, n])
    means = (a / max(c, 1.0), lp / max(c, 1.0))
    return [token_covariance(inp.logprobs, inp.advantages, inp.mask, means) for inp in inputs], int(c)


def split_selection(selected: torch.Tensor, masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Scatter a flat [N] selection over valid tokens back into per-micro-batch [B,T] masks."""
    out, start = [], 0
    for m in masks:
        n = int(m.sum())
        out.append(torch.zeros_like(m, dtype=torch.bool).masked_scatter(m.bool(), selected[start:start + n].to(m.device)))
        start += n
    return out


def random_select(candidates: torch.Tensor, counts: list[int], rank: int, n_pick: int,
                  generator: torch.Generator) -> torch.Tensor:
    """candidates [N] bool (this rank's); counts: candidates on every rank -> [N] bool, this rank's share of
    n_pick tokens drawn uniformly without replacement from all ranks' candidates.  Every rank holds the same
    generator state, so all draw the same global sample."""
    picks = torch.randperm(sum(counts), generator=generator)[:n_pick]
    offset = sum(counts[:rank])
    local = picks[(picks >= offset) & (picks < offset + counts[rank])] - offset
    out = torch.zeros_like(candidates, dtype=torch.bool)
    out[candidates.nonzero().squeeze(1).cpu()[local].to(out.device)] = True
    return out


def top_k_select(cov: torch.Tensor, k: int, gather: Callable[[list], list[list]]) -> torch.Tensor:
    """cov [N] this rank's covariances -> [N] bool: the global top k over all ranks (all ties at the k-th
    value selected).  Ranks exchange only their local top-k values."""
    top = cov.topk(min(k, cov.numel())).values.tolist() if k > 0 else []
    gathered = torch.tensor([v for part in gather(top) for v in part], dtype=cov.dtype)  # collective: every rank
    if k == 0 or gathered.numel() == 0:
        return torch.zeros_like(cov, dtype=torch.bool)
    return cov >= gathered.topk(min(k, gathered.numel())).values[-1].to(cov.device)
