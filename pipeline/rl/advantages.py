"""Group-relative advantages (GRPO, Shao et al. 2024; Dr.GRPO, Liu et al. 2025).

Rewards arrive as consecutive groups of `group_size` samples of the same prompt.  The advantage is the
reward minus its group mean, divided by the group's standard deviation (Bessel-corrected, + eps) as in
verl and TRL; `scale_by_std=False` gives Dr.GRPO's unscaled variant.
"""
from __future__ import annotations

import torch


def grpo_advantages(rewards: torch.Tensor, group_size: int, *, scale_by_std: bool = True,
                    eps: float = 1e-6) -> torch.Tensor:
    """rewards [N] with N = G * group_size -> advantages [N] (same dtype)."""
    if rewards.dim() != 1 or group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"grpo_advantages: rewards of shape {tuple(rewards.shape)} do not split into groups "
                         f"of {group_size}")
    grouped = rewards.view(-1, group_size)
    adv = grouped - grouped.mean(dim=1, keepdim=True)
    if scale_by_std:
        std = grouped.std(dim=1, keepdim=True, unbiased=True) if group_size > 1 else torch.zeros_like(adv)
        adv = adv / (std + eps)
    return adv.reshape(-1)
