"""AEnt (arXiv 2509.03493): a clamped-entropy bonus with a box-constrained adaptive coefficient.

Clamped entropy: per position the lowest floor(clamp_p V) logits are dropped (mask without gradient)
and the rest renormalised.  loss -= lambda * token-mean(clamped H) over the global mini-batch (token-mean,
as in the paper, whatever `train.agg_mode`).  After `warmup_steps` rollout steps,
lambda <- clip(lambda - beta [min(0, H - H_low) + max(0, H - H_high)], lambda_low, lambda_high), H the
rollout policy's clamped entropy.  The band is absolute (nats, the paper's Qwen2.5-Math values), or with
`relative: true` a multiple of the base policy's clamped entropy measured by the entropy stage, which is
how the embedded model, whose entropies live on another scale, gets a band that can act.
"""
from __future__ import annotations

from functools import partial


from pipeline.config.methods import AentCfg
from pipeline.rl.controllers import AEntController
from pipeline.rl.entropy import fused_clamped_entropy
from pipeline.rl.methods.base import Controlled, RegInputs, RegOutput, entropy_sum, register
from pipeline.rl.losses import masked


@register
class AEnt(Controlled):
    name = "aent"
    Config = AentCfg

    def __init__(self, *, clamp_p: float, **controller_kwargs) -> None:
        super().__init__()
        self.clamp_p = clamp_p
        self.controller = AEntController(**controller_kwargs)

    @classmethod
    def from_config(cls, cfg: AentCfg, anchors: dict, seed: int) -> "AEnt":
        scale = 1.0
        if cfg.relative:
            if "aent_clamped_entropy" not in anchors:
                raise ValueError("entropy.aent.relative needs aent_clamped_entropy in h0.json (entropy stage)")
            scale = anchors["aent_clamped_entropy"]
        return cls(clamp_p=cfg.clamp_p, lambda_init=cfg.lambda_init, h_low=cfg.h_low * scale,
                   h_high=cfg.h_high * scale, beta=cfg.beta, warmup_steps=cfg.warmup_steps,
                   lambda_low=cfg.lambda_low, lambda_high=cfg.lambda_high)

    @classmethod
    def anchor_heads(cls, cfg: AentCfg) -> dict:
        return {"clamped_entropy": partial(fused_clamped_entropy, clamp_p=cfg.clamp_p)}

    @classmethod
    def anchor_stats(cls, cfg: AentCfg, inp: RegInputs) -> dict[str, tuple[float, float]]:
        return {"aent_clamped_entropy": entropy_sum(inp.extra["clamped_entropy"], inp.mask)}

    def heads(self) -> dict:
        return {"clamped_entropy": partial(fused_clamped_entropy, clamp_p=self.clamp_p)}

    def _clamped(self, inp: RegInputs):
        if "clamped_entropy" not in inp.extra:
            raise ValueError("AEnt needs the clamped entropy head (RegInputs.extra['clamped_entropy'])")
        return inp.extra["clamped_entropy"]

    def tracked(self, inp: RegInputs) -> tuple[float, float]:
        return entropy_sum(self._clamped(inp), inp.mask)

    def term(self, inp: RegInputs, ctx: dict) -> RegOutput:
        h = self._clamped(inp)
        bonus = masked(h, inp.mask.bool()).sum() / max(inp.denoms.tokens, 1.0)
        return RegOutput(-self.controller.coef * bonus, self.coefficients())

    def guides(self) -> dict:
        return {"metric": "reg/tracked", "band": (self.controller.h_low, self.controller.h_high)}
