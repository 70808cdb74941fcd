"""A fixed entropy bonus: loss -= beta * agg(H), aggregated like the policy loss (`train.agg_mode`)."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.rl.methods.base import Regularizer, RegInputs, RegOutput, global_aggregate, register
from pipeline.utils.fields import fld


@dataclass(frozen=True)
class FixedCfg:
    beta: float = fld(1e-3, ge=0.0, fix="use a non-negative entropy coefficient such as 1e-3")


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
