"""Regularizers by name, and how a policy loss is assembled with one.

`build_regularizer(name, **kwargs)` takes explicit keyword arguments (the trainer maps params.yaml to
them); `regularized_loss` applies a `RegOutput` to the per-token policy losses and aggregates.
"""
from __future__ import annotations

import torch

from pipeline.rl.baselines import ClipCov, KLCov, Siren, Skywork
from pipeline.rl.losses import aggregate
from pipeline.rl.regularizers import AER, AEnt, FixedEntropy, Regularizer, RegOutput

REGULARIZERS: dict[str, type[Regularizer]] = {
    "none": Regularizer, "grpo": Regularizer, "fixed": FixedEntropy, "aer": AER, "aent": AEnt,
    "siren": Siren, "skywork": Skywork, "clip_cov": ClipCov, "kl_cov": KLCov,
}


def build_regularizer(name: str, **kwargs) -> Regularizer:
    if name not in REGULARIZERS:
        raise KeyError(f"unknown entropy method {name!r}; known: {', '.join(REGULARIZERS)}")
    return REGULARIZERS[name](**kwargs)


def regularized_loss(per_token: torch.Tensor, mask: torch.Tensor, out: RegOutput, agg_mode: str,
                     max_len: int | None = None) -> torch.Tensor:
    """per_token [B,T] policy losses -> scalar: (per_token * weight + token_term) aggregated + term."""
    if out.policy_weight is not None:
        per_token = per_token * out.policy_weight
    if out.token_term is not None:
        per_token = per_token + out.token_term
    return aggregate(per_token, mask, agg_mode, max_len=max_len) + out.term
