"""Clip-Cov (Cui et al. 2025, arXiv 2505.22617), as verl's `compute_policy_loss_clip_cov` defines it.

Candidates: valid tokens not already clipped by the PPO clip whose covariance lies strictly inside
(clip_lb, clip_ub); n = max(int(clip_ratio x valid tokens), 1) of them are drawn uniformly at random and
their loss is multiplied by 0 (no gradient; they still count in the denominator).  The other tokens keep
the clipped surrogate.  The authors' recipe runs Clip-Cov with clip bounds 1 / 1 (ratio clamped to [0, 2]);
the comparison's Clip-Cov arm sets `train.clip_low: 1.0`, `train.clip_high: 1.0` for that reason.  Means,
count and draw span the global mini-batch (see `cov.py`); every rank draws from an identically seeded
generator.  Removing the gradient of the selected tokens acts even at importance ratio 1, so Clip-Cov is
valid with one optimizer step per rollout batch.
"""
from __future__ import annotations


import torch

from pipeline.config.methods import ClipCovCfg
from pipeline.rl.methods.base import Comm, RegInputs, RegOutput, Regularizer, register
from pipeline.rl.methods.cov import global_covariances, random_select, split_selection


@register
class ClipCov(Regularizer):
    name = "clip_cov"
    Config = ClipCovCfg
    needs_policy_pass = True

    def __init__(self, *, clip_ratio: float, clip_lb: float, clip_ub: float, seed: int = 0) -> None:
        super().__init__()
        self.clip_ratio, self.clip_lb, self.clip_ub = clip_ratio, clip_lb, clip_ub
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_config(cls, cfg: ClipCovCfg, anchors: dict, seed: int) -> "ClipCov":
        return cls(clip_ratio=cfg.clip_ratio, clip_lb=cfg.clip_lb, clip_ub=cfg.clip_ub, seed=seed)

    def micro_stats(self, inp: RegInputs) -> RegInputs:
        return inp

    def batch_context(self, stats: list[RegInputs], comm: Comm) -> list[dict]:
        covs, n_global = global_covariances(stats, comm)
        flat, clipped = [], []
        for inp, cov in zip(stats, covs):
            m = inp.mask.bool()
            _, diag = super().policy_loss(inp, {})
            flat.append(cov[m])
            clipped.append(diag["clipped"][m])
        cov, by_origin = torch.cat(flat), torch.cat(clipped)
        candidates = (cov > self.clip_lb) & (cov < self.clip_ub) & ~by_origin
        counts = [c[0] for c in comm.gather([int(candidates.sum())])]
        n_clip = max(int(self.clip_ratio * n_global), 1)
        chosen = random_select(candidates, counts, comm.rank, n_clip, self.generator)
        return [{"select": s} for s in split_selection(chosen, [inp.mask for inp in stats])]

    def policy_loss(self, inp: RegInputs, ctx: dict):
        per_tok, diag = super().policy_loss(inp, ctx)
        return per_tok * (~ctx["select"]).to(per_tok.dtype), diag

    def term(self, inp: RegInputs, ctx: dict) -> RegOutput:
        return RegOutput(inp.entropy.new_zeros(()), {"reg/cov_tokens": float(ctx["select"].sum())})

    def state_dict(self) -> dict:
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])
