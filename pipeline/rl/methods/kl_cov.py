"""KL-Cov (Cui et al. 2025, arXiv 2505.22617), as verl's `compute_policy_loss_kl_cov` defines it.

The top k = max(1, int(kl_ratio x valid tokens)) tokens by covariance get the loss
-A r + kl_coef |logp - logp_old|; every other token gets the UNCLIPPED -A r (no PPO clip in this loss, so
`train.clip_low/high` do not apply).  Selection spans the global mini-batch (see `cov.py`); all ties at
the k-th value are selected.  At importance ratio 1 the penalty and its gradient vanish and the loss is
plain -A r: KL-Cov needs more than one optimizer step per rollout batch (`off_policy_only` in its config
entry; refused at validation otherwise).  Defaults: the authors' 7B recipe (kl_ratio 0.002, ppo_kl_coef 1).
"""
from __future__ import annotations


import torch

from pipeline.config.methods import KLCovCfg
from pipeline.rl.losses import masked
from pipeline.rl.methods.base import Comm, RegInputs, RegOutput, Regularizer, register
from pipeline.rl.methods.cov import global_covariances, split_selection, top_k_select


@register
class KLCov(Regularizer):
    name = "kl_cov"
    Config = KLCovCfg
    needs_policy_pass = True

    def __init__(self, *, kl_ratio: float, kl_coef: float) -> None:
        super().__init__()
        self.kl_ratio, self.kl_coef = kl_ratio, kl_coef

    def micro_stats(self, inp: RegInputs) -> RegInputs:
        return inp

    def batch_context(self, stats: list[RegInputs], comm: Comm) -> list[dict]:
        covs, n_global = global_covariances(stats, comm)
        flat = torch.cat([cov[inp.mask.bool()] for inp, cov in zip(stats, covs)])
        k = max(1, int(n_global * self.kl_ratio)) if n_global else 0
        chosen = top_k_select(flat, k, comm.gather)
        return [{"select": s} for s in split_selection(chosen, [inp.mask for inp in stats])]

    def policy_loss(self, inp: RegInputs, ctx: dict):
        m = inp.mask.bool()
        adv = inp.advantages.unsqueeze(1).expand_as(inp.logprobs)
        log_ratio = masked(inp.logprobs - inp.old_logprobs, m)
        ratio = torch.exp(log_ratio)
        penalty = self.kl_coef * log_ratio.abs() * ctx["select"].to(ratio.dtype)
        per_tok = masked(-adv * ratio + penalty, m)
        with torch.no_grad():
            none = torch.zeros_like(m)
            diag = {"clipped": none, "clipped_low": none, "clipped_high": none, "ratio": masked(ratio, m),
                    "kl": masked(ratio - 1.0 - log_ratio, m)}
        return per_tok, diag

    def term(self, inp: RegInputs, ctx: dict) -> RegOutput:
        return RegOutput(inp.entropy.new_zeros(()), {"reg/cov_tokens": float(ctx["select"].sum())})
