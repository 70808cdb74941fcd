"""A fixed entropy bonus: loss -= beta * agg(H), aggregated like the policy loss (`train.agg_mode`)."""
from __future__ import annotations


from pipeline.config.methods import FixedCfg
from pipeline.rl.methods.base import Regularizer, RegInputs, RegOutput, global_aggregate, register


@register
class FixedEntropy(Regularizer):
    name = "fixed"
    Config = FixedCfg

    def __init__(self, *, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def term(self, inp: RegInputs, ctx: dict) -> RegOutput:
        bonus = global_aggregate(inp.entropy, inp.mask, inp.agg_mode, inp.denoms)
        return RegOutput(-self.beta * bonus, {"reg/coef": self.beta})

    def coefficients(self) -> dict[str, float]:
        return {"reg/coef": self.beta}
