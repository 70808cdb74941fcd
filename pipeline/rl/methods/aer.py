"""AER, Adaptive Entropy Regularization: loss -= alpha * agg(w_i H_it), with H* = tau H0 and alpha adapted.

Our formulation is an inference from the paper's abstract and summaries (the body was unavailable):
* allocation: per-sample weights from task difficulty d_i = 1 - p_i, p_i the base model's pass rate on
  sample i's prompt (optionally blended with an online EMA of the prompt's group accuracy); linear w = d
  or threshold w = 1[d >= t], normalised to mean 1 over the global mini-batch (every micro-batch and
  rank), so alpha is the mini-batch's average coefficient and the weights only move it between samples;
* target: H* = tau * H0, H0 the base policy's token-mean entropy on its own samples (stage `entropy`);
* controller: once per rollout step, with e = (H* - H) / H* and H the rollout policy's token-mean entropy
  on that step's responses (all ranks), a PI update: I <- clip(I + lr e), alpha = clip(I + kp e), both
  clipped to [alpha_min, alpha_max].  Relative error, so one set of gains serves any entropy scale.
"""
from __future__ import annotations


import torch

from pipeline.config.methods import AerCfg
from pipeline.rl.controllers import AERController, difficulty_weights
from pipeline.rl.methods.base import Comm, Controlled, RegInputs, RegOutput, global_aggregate, register


@register
class AER(Controlled):
    name = "aer"
    Config = AerCfg

    def __init__(self, *, h0: float, tau: float, lr: float, kp: float = 0.0, alpha_init: float = 0.0,
                 alpha_min: float = 0.0, alpha_max: float, weight_mode: str = "linear", threshold: float = 0.5,
                 ema_blend: float = 0.0, ema_decay: float = 0.9) -> None:
        super().__init__()
        self.h0, self.tau = float(h0), float(tau)
        self.controller = AERController(tau * h0, alpha=alpha_init, lr=lr, kp=kp, alpha_min=alpha_min,
                                        alpha_max=alpha_max)
        self.weight_mode, self.threshold = weight_mode, threshold
        self.ema_blend, self.ema_decay = ema_blend, ema_decay
        self.online: dict[str, float] = {}

    @classmethod
    def from_config(cls, cfg: AerCfg, anchors: dict, seed: int) -> "AER":
        if "h0" not in anchors:
            raise ValueError("AER needs the initial entropy h0 (data/entropy/h0.json from the entropy stage)")
        return cls(h0=anchors["h0"], tau=cfg.tau, lr=cfg.lr, kp=cfg.kp, alpha_init=cfg.alpha_init, alpha_min=cfg.alpha_min,
                   alpha_max=cfg.alpha_max, weight_mode=cfg.weight_mode, threshold=cfg.threshold,
                   ema_blend=cfg.ema_blend, ema_decay=cfg.ema_decay)

    def observe(self, problem_ids: list[str], accuracies: list[float]) -> None:
        """Fold each prompt's group accuracy into its online EMA (used when ema_blend > 0)."""
        for pid, acc in zip(problem_ids, accuracies):
            prev = self.online.get(pid)
            self.online[pid] = acc if prev is None else self.ema_decay * prev + (1 - self.ema_decay) * acc

    def difficulty(self, problem_ids: list[str], base_rates: torch.Tensor) -> torch.Tensor:
        """[P] base pass rates blended with the online EMA where one exists."""
        if self.ema_blend == 0.0:
            return base_rates
        online = torch.tensor([self.online.get(pid, float(b)) for pid, b in zip(problem_ids, base_rates)],
                              dtype=base_rates.dtype)
        return (1 - self.ema_blend) * base_rates + self.ema_blend * online

    def _raw(self, inp: RegInputs) -> torch.Tensor:
        if inp.pass_rates is None:
            raise ValueError("AER needs per-sample pass_rates [B] (from the difficulty stage)")
        return difficulty_weights(inp.pass_rates, mode=self.weight_mode, threshold=self.threshold)

    def micro_stats(self, inp: RegInputs) -> tuple[float, float]:
        w = self._raw(inp)
        return float(w.sum()), float(w.numel())

    def batch_context(self, stats: list, comm: Comm) -> list[dict]:
        """Mean-1 normalisation of the weights over the global mini-batch (all micro-batches and ranks)."""
        total, n = comm.sum([sum(s for s, _ in stats), sum(c for _, c in stats)])
        scale = n / total if total > 0 else 0.0  # all weights zero stays zero
        return [{"scale": scale} for _ in stats]

    def term(self, inp: RegInputs, ctx: dict) -> RegOutput:
        w = (self._raw(inp) * ctx["scale"]).to(inp.entropy.dtype)
        bonus = global_aggregate(inp.entropy * w.unsqueeze(1), inp.mask, inp.agg_mode, inp.denoms)
        alpha = self.controller.alpha
        return RegOutput(-alpha * bonus, self.coefficients(), {"aer_weight": w.detach()})

    def coefficients(self) -> dict[str, float]:
        return {**super().coefficients(), "reg/target": self.controller.target}

    def guides(self) -> dict:
        return {"target": self.controller.target}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "online": dict(self.online)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.online = dict(state["online"])
