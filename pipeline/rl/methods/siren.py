"""SIREN (arXiv 2509.25133; Linn3a/siren): regularise the selected peak entropy toward its initial value.

Nucleus entropy: within the top-K tokens keep the ranked prefix whose cumulative probability stays below
top_p (the crossing token excluded; an empty nucleus has entropy 0), renormalise and take the entropy.
Peak-entropy mask: per response, tokens strictly above the response's rho-quantile of nucleus entropy
(padding ignored).  H_sel = mean over ALL B sequences of each sequence's mean selected entropy (a sequence
with no selection contributes 0), and loss += beta (H_sel - H0_sel)^2, with H0_sel one global anchor
measured once on the initial policy (the entropy stage records it; otherwise the first mini-batch sets it).

Where we differ from the official code, on purpose: SIREN's `dp_actor.py` squares the selected-entropy
deviation of each micro-batch (a micro-batch holds a few sequences under its token budget) and sums the
squares with weights n_mb / N, so its update depends on how the mini-batch is packed.  We square the
deviation of the global mini-batch (all micro-batches and ranks, from a no-grad pass of the current policy
before any backward), which is the paper's batch definition; each micro-batch then carries the exact
gradient 2 beta (H_sel - H0_sel) dH_sel_mb.  The paper pairs SIREN with Dr.GRPO (`agg_mode:
seq-mean-token-sum-norm`, `scale_by_std: false`); the comparison's SIREN arm sets both.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Optional

import torch

from pipeline.config.methods import SirenCfg
from pipeline.rl.entropy import fused_nucleus_entropy
from pipeline.rl.losses import masked
from pipeline.rl.methods.base import Comm, RegInputs, RegOutput, Regularizer, register


def peak_entropy_mask(entropy: torch.Tensor, mask: torch.Tensor, rho: float) -> torch.Tensor:
    """[B,T] bool: tokens whose entropy is strictly above their response's rho-quantile (linear
    interpolation over valid tokens only)."""
    m = mask.bool()
    h = entropy.detach().to(torch.float64).masked_fill(~m, float("nan"))
    q = torch.nanquantile(h, rho, dim=1, keepdim=True)
    return (h > q) & m


def selected_entropy(h: torch.Tensor, mask: torch.Tensor, rho: float) -> torch.Tensor:
    """nucleus entropy h [B,T], mask [B,T] -> [B]: each response's mean over its peak tokens (0 if none)."""
    sel = peak_entropy_mask(h, mask, rho)
    return masked(h, sel).sum(dim=1) / sel.sum(dim=1).clamp(min=1)


@register
class Siren(Regularizer):
    name = "siren"
    Config = SirenCfg
    needs_policy_pass = True

    def __init__(self, *, beta: float, top_p: float, top_k: int, rho: float, anchor: Optional[float] = None) -> None:
        super().__init__()
        self.beta, self.top_p, self.top_k, self.rho = beta, top_p, top_k, rho
        self.anchor = anchor

    @classmethod
    def from_config(cls, cfg: SirenCfg, anchors: dict, seed: int) -> "Siren":
        return cls(beta=cfg.beta, top_p=cfg.top_p, top_k=cfg.top_k, rho=cfg.rho, anchor=anchors.get("siren_anchor"))

    @classmethod
    def anchor_heads(cls, cfg: SirenCfg) -> dict:
        return {"nucleus_entropy": partial(fused_nucleus_entropy, top_p=cfg.top_p, top_k=cfg.top_k)}

    @classmethod
    def anchor_stats(cls, cfg: SirenCfg, inp: RegInputs) -> dict[str, tuple[float, float]]:
        per_seq = selected_entropy(inp.extra["nucleus_entropy"], inp.mask, cfg.rho).detach()
        return {"siren_anchor": (float(per_seq.sum()), float(per_seq.numel()))}

    def heads(self) -> dict:
        return {"nucleus_entropy": partial(fused_nucleus_entropy, top_p=self.top_p, top_k=self.top_k)}

    def _per_seq(self, inp: RegInputs) -> torch.Tensor:
        if "nucleus_entropy" not in inp.extra:
            raise ValueError("SIREN needs the nucleus entropy head (RegInputs.extra['nucleus_entropy'])")
        return selected_entropy(inp.extra["nucleus_entropy"], inp.mask, self.rho)

    def micro_stats(self, inp: RegInputs) -> tuple[float, float]:
        per_seq = self._per_seq(inp).detach()
        return float(per_seq.sum()), float(per_seq.numel())

    def batch_context(self, stats: list, comm: Comm) -> list[dict]:
        total, n = comm.sum([sum(s for s, _ in stats), sum(c for _, c in stats)])
        h_sel = total / max(n, 1.0)
        if self.anchor is None and math.isfinite(h_sel):
            self.anchor = h_sel  # self-anchoring on the initial policy: the same value on every rank
        if self.anchor is None:  # a non-finite first batch: no anchor yet, so no pull this step
            return [{"h_sel": h_sel, "no_anchor": True} for _ in stats]
        return [{"h_sel": h_sel} for _ in stats]

    def term(self, inp: RegInputs, ctx: dict) -> RegOutput:
        per_seq = self._per_seq(inp)
        s = per_seq.sum()
        dev = 0.0 if ctx.get("no_anchor") else ctx["h_sel"] - self.anchor
        share = per_seq.numel() / max(inp.denoms.samples, 1.0)
        # value: this micro-batch's share of beta dev^2; gradient: 2 beta dev dH_sel (exact for the global square)
        term = 2 * self.beta * dev * (s - s.detach()) / max(inp.denoms.samples, 1.0) + self.beta * dev ** 2 * share
        return RegOutput(term, {**self.coefficients(), "reg/selected_entropy": ctx["h_sel"]})

    def coefficients(self) -> dict[str, float]:
        out = {"reg/coef": self.beta}
        if self.anchor is not None:
            out["reg/target"] = self.anchor
        return out

    def guides(self) -> dict:
        return {"metric": "reg/selected_entropy", "target": self.anchor} if self.anchor is not None else {}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.anchor = state["anchor"]
