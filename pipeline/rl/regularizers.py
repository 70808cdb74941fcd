"""Entropy regularizers behind one interface, selected by name (`train.method` in params.yaml).

Each regularizer turns a micro-batch's tensors (`RegInputs`) into a `RegOutput`: a scalar term added to
the policy loss, optional per-token changes to the policy loss (Clip-Cov / KL-Cov), metrics, and the
token sum/count of the entropy statistic its controller tracks.  The trainer sums those statistics over
micro-batches and ranks and calls `update(global_value, step)` once per optimizer step.

Methods: none/grpo; fixed (loss -= beta H); aer (loss -= alpha agg(w_i H_it), w from base pass rates,
H* = tau H0); aent (arXiv 2509.03493); siren (arXiv 2509.25133); skywork (Skywork-OR1 / TRL);
clip_cov and kl_cov (Cui et al., arXiv 2505.22617).  Every entropy term is aggregated with the policy
loss's own mode so the bonus scales like the loss it is added to.  docs/methods.md has the formulas.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from pipeline.rl.controllers import AEntController, AERController, StepGuard, difficulty_weights
from pipeline.rl.entropy import clamped_entropy
from pipeline.rl.losses import aggregate, masked


@dataclass
class RegInputs:
    """One micro-batch.  entropy, mask, logprobs, old_logprobs: [B,T]; advantages [B] or [B,T];
    logits [B,T,V] only for methods with `needs_logits`; pass_rates [B] for AER."""
    entropy: torch.Tensor
    mask: torch.Tensor
    agg_mode: str = "token-mean"
    max_len: Optional[int] = None
    logprobs: Optional[torch.Tensor] = None
    old_logprobs: Optional[torch.Tensor] = None
    advantages: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    pass_rates: Optional[torch.Tensor] = None
    cov_select: Optional[torch.Tensor] = None  # [B,T] bool: Clip-Cov/KL-Cov tokens chosen over all ranks


@dataclass
class RegOutput:
    term: torch.Tensor
    stat_sum: float
    stat_count: float
    metrics: dict[str, float] = field(default_factory=dict)
    policy_weight: Optional[torch.Tensor] = None  # [B,T] multiplier on the per-token policy loss
    token_term: Optional[torch.Tensor] = None     # [B,T] added to the per-token policy loss


def _entropy_stat(entropy: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    m = mask.bool()
    return float(masked(entropy.detach(), m).sum()), float(m.sum())


class Regularizer:
    name = "none"
    needs_logits = False

    def __init__(self) -> None:
        self.guard = StepGuard()

    def term(self, inp: RegInputs) -> RegOutput:
        s, c = _entropy_stat(inp.entropy, inp.mask)
        return RegOutput(inp.entropy.new_zeros(()), s, c)

    def update(self, value: float, step: int) -> dict[str, float]:
        """Called once per optimizer step with the global tracked statistic; returns metrics."""
        self.guard.check(step)
        return self._update(float(value))

    def _update(self, value: float) -> dict[str, float]:
        return {"reg/tracked": value}

    def state_dict(self) -> dict:
        return {"last_step": self.guard.last_step}

    def load_state_dict(self, state: dict) -> None:
        self.guard.last_step = state["last_step"]


class FixedEntropy(Regularizer):
    name = "fixed"

    def __init__(self, *, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def term(self, inp):
        s, c = _entropy_stat(inp.entropy, inp.mask)
        bonus = aggregate(inp.entropy, inp.mask, inp.agg_mode, max_len=inp.max_len)
        return RegOutput(-self.beta * bonus, s, c, {"reg/coef": self.beta})


class AER(Regularizer):
    """Adaptive Entropy Regularization: difficulty-allocated per-sample coefficients, anchored target."""
    name = "aer"

    def __init__(self, *, h0: float, tau: float, lr: float, alpha_init: float = 0.0, alpha_min: float = 0.0,
                 alpha_max: float, weight_mode: str = "linear", threshold: float = 0.5, ema_blend: float = 0.0,
                 ema_decay: float = 0.9) -> None:
        super().__init__()
        self.h0, self.tau = float(h0), float(tau)
        self.controller = AERController(tau * h0, alpha=alpha_init, lr=lr, alpha_min=alpha_min, alpha_max=alpha_max)
        self.weight_mode, self.threshold = weight_mode, threshold
        self.ema_blend, self.ema_decay = ema_blend, ema_decay
        self.online: dict[str, float] = {}

    def observe(self, prompt_ids: list[str], accuracies: list[float]) -> None:
        """Fold each prompt's group accuracy into its online EMA (used when ema_blend > 0)."""
        for pid, acc in zip(prompt_ids, accuracies):
            prev = self.online.get(pid)
            self.online[pid] = acc if prev is None else self.ema_decay * prev + (1 - self.ema_decay) * acc

    def blended_pass_rates(self, prompt_ids: list[str], base: torch.Tensor) -> torch.Tensor:
        """[B] base pass rates blended with the online EMA where one exists."""
        if self.ema_blend == 0.0:
            return base
        online = torch.tensor([self.online.get(pid, float(b)) for pid, b in zip(prompt_ids, base)], dtype=base.dtype)
        return (1 - self.ema_blend) * base + self.ema_blend * online

    def term(self, inp):
        if inp.pass_rates is None:
            raise ValueError("AER needs per-sample pass_rates [B] (from the difficulty stage)")
        s, c = _entropy_stat(inp.entropy, inp.mask)
        w = difficulty_weights(inp.pass_rates, mode=self.weight_mode, threshold=self.threshold)
        weighted = inp.entropy * w.to(inp.entropy.dtype).unsqueeze(1)
        bonus = aggregate(weighted, inp.mask, inp.agg_mode, max_len=inp.max_len)
        alpha = self.controller.alpha
        return RegOutput(-alpha * bonus, s, c, {"reg/coef": alpha, "reg/target": self.controller.target,
                                                  "reg/weight_max": float(w.max()), "reg/weight_min": float(w.min())})

    def _update(self, value):
        alpha = self.controller.update(value)
        return {"reg/coef": alpha, "reg/target": self.controller.target, "reg/tracked": value}

    def state_dict(self):
        return {**super().state_dict(), "controller": self.controller.state_dict(), "online": dict(self.online)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.online = dict(state["online"])


class AEnt(Regularizer):
    name = "aent"
    needs_logits = True

    def __init__(self, *, clamp_p: float, **controller_kwargs) -> None:
        super().__init__()
        self.clamp_p = clamp_p
        self.controller = AEntController(**controller_kwargs)

    def term(self, inp):
        if inp.logits is None:
            raise ValueError("AEnt needs logits [B,T,V] for the clamped entropy")
        h = clamped_entropy(inp.logits, clamp_p=self.clamp_p)
        s, c = _entropy_stat(h, inp.mask)
        bonus = aggregate(h, inp.mask, "token-mean")
        coef = self.controller.coef
        return RegOutput(-coef * bonus, s, c, {"reg/coef": coef, "reg/clamped_entropy": s / max(c, 1.0)})

    def _update(self, value):
        return {"reg/coef": self.controller.update(value), "reg/tracked": value}

    def state_dict(self):
        return {**super().state_dict(), "controller": self.controller.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
