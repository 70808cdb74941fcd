"""Coefficient controllers and difficulty weights for the entropy regularizers.

* `AERController` (AER): alpha <- clip(alpha + lr (H* - H), alpha_min, alpha_max), an integral
  controller that raises the bonus while entropy is below the target H* = tau H0 and lowers it above.
* `difficulty_weights` (AER): difficulty d = 1 - base pass rate; linear w = d or threshold w = 1[d >= t],
  normalised to mean 1 over the batch so that alpha stays the batch-average coefficient.
* `AEntController` (AEnt, arXiv 2509.03493 Alg. 1): lambda <- clip(lambda - beta [min(0, H - H_low) +
  max(0, H - H_high)], lambda_low, lambda_high) once past the warm-up.
* `SkyworkController` (Skywork-OR1's adaptive entropy control, as shipped in TRL): coefficient +- delta
  toward the target; the bonus is active only while entropy <= target.
Each controller is updated once per optimizer step with the global entropy (`StepGuard` enforces it).
"""
from __future__ import annotations

import torch


class StepGuard:
    """Refuses a second update in the same optimizer step (the per-micro-batch update pitfall)."""

    def __init__(self) -> None:
        self.last_step = -1

    def check(self, step: int) -> None:
        if step <= self.last_step:
            raise RuntimeError(f"controller updated twice at step {step} (last update at {self.last_step}); "
                               "update once per optimizer step with the global entropy, not per micro-batch")
        self.last_step = step


class AERController:
    """Integral controller for AER's global coefficient alpha."""

    def __init__(self, target: float, *, alpha: float = 0.0, lr: float, alpha_min: float = 0.0,
                 alpha_max: float) -> None:
        if not alpha_min <= alpha_max:
            raise ValueError(f"AERController: alpha_min {alpha_min} > alpha_max {alpha_max}")
        self.target, self.lr, self.alpha_min, self.alpha_max = float(target), float(lr), float(alpha_min), float(alpha_max)
        self.alpha = min(max(float(alpha), self.alpha_min), self.alpha_max)
        self.updates = 0

    def update(self, entropy: float) -> float:
        self.alpha = min(max(self.alpha + self.lr * (self.target - float(entropy)), self.alpha_min), self.alpha_max)
        self.updates += 1
        return self.alpha

    def state_dict(self) -> dict:
        return {"alpha": self.alpha, "target": self.target, "lr": self.lr, "alpha_min": self.alpha_min,
                "alpha_max": self.alpha_max, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for key in ("alpha", "target", "lr", "alpha_min", "alpha_max", "updates"):
            setattr(self, key, state[key])


def difficulty_weights(pass_rates: torch.Tensor, *, mode: str = "linear", threshold: float = 0.5) -> torch.Tensor:
    """pass_rates [N] in [0, 1] -> weights [N] with mean 1 (all zeros stays all zeros)."""
    d = 1.0 - pass_rates.to(torch.float64 if pass_rates.dtype == torch.float64 else torch.float32)
    if mode == "linear":
        w = d
    elif mode == "threshold":
        w = (d >= threshold).to(d.dtype)
    else:
        raise ValueError(f"difficulty_weights: unknown mode {mode!r}; use 'linear' or 'threshold'")
    total = w.sum()
    return w * (w.numel() / total) if total > 0 else torch.zeros_like(w)


class AEntController:
    """AEnt's box-constrained coefficient update with a warm-up during which lambda is frozen."""

    def __init__(self, *, lambda_init: float, h_low: float, h_high: float, beta: float, warmup_steps: int,
                 lambda_low: float, lambda_high: float) -> None:
        self.coef, self.h_low, self.h_high, self.beta = float(lambda_init), h_low, h_high, beta
        self.warmup_steps, self.lambda_low, self.lambda_high = warmup_steps, lambda_low, lambda_high
        self.updates = 0

    def update(self, entropy: float) -> float:
        self.updates += 1
        if self.updates > self.warmup_steps:
            push = min(0.0, entropy - self.h_low) + max(0.0, entropy - self.h_high)
            self.coef = min(max(self.coef - self.beta * push, self.lambda_low), self.lambda_high)
        return self.coef

    def state_dict(self) -> dict:
        return {"coef": self.coef, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.coef, self.updates = state["coef"], state["updates"]


class SkyworkController:
    """Coefficient steps of +-delta toward the target entropy; bonus active only at or below target."""

    def __init__(self, *, target: float, coef_init: float, delta: float, coef_min: float, coef_max: float) -> None:
        self.target, self.coef, self.delta, self.coef_min, self.coef_max = target, coef_init, delta, coef_min, coef_max
        self.last_entropy: float | None = None
        self.updates = 0

    @property
    def active(self) -> bool:
        return self.last_entropy is None or self.last_entropy <= self.target

    def update(self, entropy: float) -> float:
        step = self.delta if entropy < self.target else -self.delta
        self.coef = min(max(self.coef + step, self.coef_min), self.coef_max)
        self.last_entropy = float(entropy)
        self.updates += 1
        return self.coef

    def state_dict(self) -> dict:
        return {"coef": self.coef, "last_entropy": self.last_entropy, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.coef, self.last_entropy, self.updates = state["coef"], state["last_entropy"], state["updates"]
