"""Loss aggregation and the PPO-clip policy loss with asymmetric bounds (Clip-Higher, DAPO).

Per token: max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high)) with r = exp(logp - old_logp) (Schulman
et al. 2017); `clip_high > clip_low` is DAPO's Clip-Higher (Yu et al. 2025).  Aggregation modes follow
verl: token-mean, seq-mean-token-mean, and Dr.GRPO's seq-mean-token-sum-norm (sum / (B * max_len)).
Padding is selected away with `torch.where`, never multiplied, so garbage (inf/NaN) in padded
positions cannot leak into the loss or its gradient.
"""
from __future__ import annotations

import torch

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def masked(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """values with padded positions replaced by 0 (safe for inf/NaN padding)."""
    return torch.where(mask.bool(), values, torch.zeros((), dtype=values.dtype, device=values.device))


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str, *, max_len: int | None = None) -> torch.Tensor:
    """values [B,T], mask [B,T] -> scalar.

    token-mean: sum / number of tokens.  seq-mean-token-mean: mean over sequences that have at least one
    token of each sequence's token mean.  seq-mean-token-sum-norm: sum / (B * max_len), max_len = T by
    default (pass the configured generation length to make it independent of padding).
    """
    m = mask.bool()
    v = masked(values, m)
    if mode == "token-mean":
        return v.sum() / m.sum().clamp(min=1)
    if mode == "seq-mean-token-mean":
        counts = m.sum(dim=1)
        per_seq = v.sum(dim=1) / counts.clamp(min=1)
        has = counts > 0
        return (per_seq * has).sum() / has.sum().clamp(min=1)
    if mode == "seq-mean-token-sum-norm":
        return v.sum() / (values.shape[0] * (max_len if max_len is not None else values.shape[1]))
    raise ValueError(f"unknown aggregation mode {mode!r}; choose one of {AGG_MODES}")


def policy_token_losses(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, *, clip_low: float, clip_high: float
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token clipped surrogate [B,T] and per-token diagnostics (all zero on padding).

    logprobs, old_logprobs, mask: [B,T]; advantages: [B] (broadcast over tokens) or [B,T].
    """
    m = mask.bool()
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    adv = adv.expand_as(logprobs)
    log_ratio = masked(logprobs - old_logprobs, m)
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = masked(torch.maximum(unclipped, clipped), m)
    with torch.no_grad():
        is_clipped = (clipped > unclipped) & m
        diag = {
            "clipped": is_clipped, "clipped_low": is_clipped & (ratio < 1.0), "clipped_high": is_clipped & (ratio > 1.0),
            "ratio": masked(ratio, m), "kl": masked(ratio - 1.0 - log_ratio, m),  # k3 estimate of KL(old || new)
        }
    return per_token, diag


def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, *, clip_low: float, clip_high: float, agg_mode: str,
                        max_len: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip loss (scalar) with asymmetric bounds and metrics {clip_frac, clip_frac_low, clip_frac_high,
    ratio_mean, approx_kl}.  Shapes as in `policy_token_losses`."""
    per_token, diag = policy_token_losses(logprobs, old_logprobs, advantages, mask, clip_low=clip_low,
                                          clip_high=clip_high)
    loss = aggregate(per_token, mask, agg_mode, max_len=max_len)
    return loss, token_metrics(diag, mask)


def token_metrics(diag: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, float]:
    n = mask.bool().sum().clamp(min=1)
    return {
        "clip_frac": float(diag["clipped"].sum() / n), "clip_frac_low": float(diag["clipped_low"].sum() / n),
        "clip_frac_high": float(diag["clipped_high"].sum() / n), "ratio_mean": float(diag["ratio"].sum() / n),
        "approx_kl": float(diag["kl"].sum() / n),
    }
