"""Coefficient controllers and difficulty weights for the entropy regularizers.

* `AERController` (AER): a PI controller on the relative error e = (H* - H) / H* (integral gain `lr`,
  proportional gain `kp`), clipped to [alpha_min, alpha_max]: it raises the bonus while entropy is below
  the target H* = tau H0 and lowers it above.
* `difficulty_weights` (AER): difficulty d = 1 - pass rate; linear w = d or threshold w = 1[d >= t].
  The AER method normalises them to mean 1 over the global mini-batch (`pipeline.rl.methods.aer`).
* `AEntController` (AEnt, arXiv 2509.03493 Alg. 1): lambda <- clip(lambda - beta [min(0, H - H_low) +
  max(0, H - H_high)], lambda_low, lambda_high) once past the warm-up.
* `SkyworkController` (Skywork-OR1's adaptive entropy control): coefficient +- delta toward the target;
  the bonus is active only while the last entropy < target (strictly, as Skywork-OR1).
Every controller ignores a non-finite statistic: the coefficient is kept, the event counted and warned
(one NaN entropy once made AER's alpha NaN for the rest of the run).
"""
from __future__ import annotations

import math
import warnings

import torch


class Controller:
    """Shared bookkeeping: update counts, and the non-finite guard in front of `_step`."""

    def __init__(self) -> None:
        self.updates = 0
        self.nonfinite = 0

    @property
    def coef(self) -> float:
        raise NotImplementedError

    def update(self, statistic: float) -> float:
        value = float(statistic)
        if not math.isfinite(value):
            self.nonfinite += 1
            warnings.warn(f"{type(self).__name__}: non-finite statistic {value}; coefficient kept at {self.coef} "
                          f"({self.nonfinite} such events)", RuntimeWarning, stacklevel=2)
            return self.coef
        self.updates += 1
        self._step(value)
        return self.coef

    def _step(self, value: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"updates": self.updates, "nonfinite": self.nonfinite}

    def load_state_dict(self, state: dict) -> None:
        self.updates, self.nonfinite = state["updates"], state.get("nonfinite", 0)


class AERController(Controller):
    """PI controller for AER's global coefficient alpha, on the relative error e = (H* - H) / H*:
    integral I <- clip(I + lr e, alpha_min, alpha_max) and alpha = clip(I + kp e, alpha_min, alpha_max).
    Relative, so the gains mean the same for any entropy scale; kp = 0 is a pure integral controller.  The
    proportional term answers at once, which damps the overshoot a lagging entropy gives integral control."""

    def __init__(self, target: float, *, alpha: float = 0.0, lr: float, kp: float = 0.0, alpha_min: float = 0.0,
                 alpha_max: float) -> None:
        super().__init__()
        if not alpha_min <= alpha_max:
            raise ValueError(f"AERController: alpha_min {alpha_min} > alpha_max {alpha_max}")
        if not target > 0:
            raise ValueError(f"AERController: the target entropy must be positive, got {target}")
        self.target, self.lr, self.kp = float(target), float(lr), float(kp)
        self.alpha_min, self.alpha_max = float(alpha_min), float(alpha_max)
        self.integral = self._clip(float(alpha))
        self.alpha = self.integral

    def _clip(self, value: float) -> float:
        return min(max(value, self.alpha_min), self.alpha_max)

    @property
    def coef(self) -> float:
        return self.alpha

    def _step(self, entropy: float) -> None:
        error = (self.target - entropy) / self.target
        self.integral = self._clip(self.integral + self.lr * error)
        self.alpha = self._clip(self.integral + self.kp * error)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "alpha": self.alpha, "integral": self.integral, "target": self.target,
                "lr": self.lr, "kp": self.kp, "alpha_min": self.alpha_min, "alpha_max": self.alpha_max}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for key in ("alpha", "integral", "target", "lr", "kp", "alpha_min", "alpha_max"):
            setattr(self, key, state[key])


def difficulty_weights(pass_rates: torch.Tensor, *, mode: str = "linear", threshold: float = 0.5) -> torch.Tensor:
    """pass_rates [N] in [0, 1] -> raw (unnormalised) weights [N]: linear 1 - p, or 1[1 - p >= threshold]."""
    d = 1.0 - pass_rates.to(torch.float64 if pass_rates.dtype == torch.float64 else torch.float32)
    if mode == "linear":
        return d
    if mode == "threshold":
        return (d >= threshold).to(d.dtype)
    raise ValueError(f"difficulty_weights: unknown mode {mode!r}; use 'linear' or 'threshold'")


class AEntController(Controller):
    """AEnt's box-constrained coefficient update with a warm-up during which lambda is frozen."""

    def __init__(self, *, lambda_init: float, h_low: float, h_high: float, beta: float, warmup_steps: int,
                 lambda_low: float, lambda_high: float) -> None:
        super().__init__()
        self.lam, self.h_low, self.h_high, self.beta = float(lambda_init), h_low, h_high, beta
        self.warmup_steps, self.lambda_low, self.lambda_high = warmup_steps, lambda_low, lambda_high

    @property
    def coef(self) -> float:
        return self.lam

    def _step(self, entropy: float) -> None:
        if self.updates > self.warmup_steps:
            push = min(0.0, entropy - self.h_low) + max(0.0, entropy - self.h_high)
            self.lam = min(max(self.lam - self.beta * push, self.lambda_low), self.lambda_high)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "coef": self.lam}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.lam = state["coef"]


class SkyworkController(Controller):
    """Coefficient steps of +-delta toward the target entropy; bonus active only below target."""

    def __init__(self, *, target: float, coef_init: float, delta: float, coef_min: float, coef_max: float) -> None:
        super().__init__()
        self.target, self.c, self.delta, self.coef_min, self.coef_max = target, coef_init, delta, coef_min, coef_max
        self.last_entropy: float | None = None

    @property
    def coef(self) -> float:
        return self.c

    @property
    def active(self) -> bool:
        return self.last_entropy is None or self.last_entropy < self.target

    def _step(self, entropy: float) -> None:
        step = self.delta if entropy < self.target else -self.delta
        self.c = min(max(self.c + step, self.coef_min), self.coef_max)
        self.last_entropy = entropy

    def state_dict(self) -> dict:
        return {**super().state_dict(), "coef": self.c, "last_entropy": self.last_entropy}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.c, self.last_entropy = state["coef"], state["last_entropy"]
