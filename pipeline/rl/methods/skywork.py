"""Skywork-OR1's adaptive entropy control (arXiv 2505.22312; SkyworkAI/Skywork-OR1, TRL's GRPOTrainer).

loss -= c * agg(H) while the last measured entropy is below `target` (strictly, as Skywork's
`entropy_loss_enabled = ent < tgt`); after every optimizer step c <- clip(c + delta, c_min, c_max) if that
step's entropy is below target, else c - delta.  Cadence and statistic follow TRL (the current policy's
exact token-mean entropy over the optimizer step's global mini-batch, once per optimizer step); Skywork's
scripts take one optimizer step per training step, where the two coincide.  The GPU profile uses
Skywork-OR1's script values (c_init 0, delta 1e-4, c_max 5e-3, target 0.2 nats, absolute); the embedded
default makes the target relative (`relative: true`: a multiple of the measured H0, 0.4 by default),
because the embedded model's entropies live on another scale.
"""
from __future__ import annotations


from pipeline.config.methods import SkyworkCfg
from pipeline.rl.controllers import SkyworkController
from pipeline.rl.methods.base import Controlled, RegInputs, RegOutput, global_aggregate, register


@register
class Skywork(Controlled):
    name = "skywork"
    Config = SkyworkCfg
    cadence = "optimizer"

    def __init__(self, **controller_kwargs) -> None:
        super().__init__()
        self.controller = SkyworkController(**controller_kwargs)

    @classmethod
    def from_config(cls, cfg: SkyworkCfg, anchors: dict, seed: int) -> "Skywork":
        if cfg.relative and "h0" not in anchors:
            raise ValueError("entropy.skywork.relative needs h0 in h0.json (entropy stage)")
        target = cfg.target * anchors["h0"] if cfg.relative else cfg.target
        return cls(target=target, coef_init=cfg.coef_init, delta=cfg.delta, coef_min=cfg.coef_min,
                   coef_max=cfg.coef_max)

    def term(self, inp: RegInputs, ctx: dict) -> RegOutput:
        coef = self.controller.coef if self.controller.active else 0.0
        bonus = global_aggregate(inp.entropy, inp.mask, inp.agg_mode, inp.denoms)
        return RegOutput(-coef * bonus, {"reg/coef": coef, "reg/target": self.controller.target})

    def coefficients(self) -> dict[str, float]:
        return {**super().coefficients(), "reg/target": self.controller.target}

    def guides(self) -> dict:
        return {"target": self.controller.target}
