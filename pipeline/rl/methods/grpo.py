"""GRPO (Shao et al. 2024, arXiv 2402.03300): the clipped group-relative policy loss and no entropy term.

`train.method: none` (alias `grpo`).  Clip-Higher (DAPO, Yu et al. 2025) is this method with
`train.clip_high > train.clip_low`; it acts only when the policy moves between optimizer steps.
"""
from __future__ import annotations

from pipeline.rl.methods.base import Regularizer, register


@register
class GRPO(Regularizer):
    name = "none"
    aliases = ("grpo",)
