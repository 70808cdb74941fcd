"""The method list: every `train.method` name, the module implementing it, and its config dataclass.

This is the one registry of methods.  The schema builds `train.method`'s choices and the `entropy.<name>`
sections from it; `pipeline.rl.registry` imports the listed modules (each registers one `Regularizer`
subclass under its name, with this config as `Config`); the comparison, the flows and the tests read it
through those.  It lives in the config package, without torch, so that a stage's DVC dependencies on the
config do not make every stage depend on every method's implementation: editing AER's code re-runs
training, not data preparation.  Formulas and sources: docs/methods.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from pipeline.config.loader import fld


def _box_problems(cfg, name: str) -> list[tuple[str, object, str, str]]:
    """`<name>_min <= <name>_init <= <name>_max` of a controller's coefficient (min > max is blamed on min)."""
    lo, init, hi = (getattr(cfg, f"{name}_{end}") for end in ("min", "init", "max"))
    if lo > hi:
        return [(f"{name}_min", lo, f"exceeds {name}_max {hi}", f"use {name}_min <= {name}_max")]
    if not lo <= init <= hi:
        return [(f"{name}_init", init, f"is outside [{name}_min, {name}_max] = [{lo}, {hi}]",
                 f"pick {name}_init within the box")]
    return []


@dataclass(frozen=True)
class FixedCfg:
    beta: float = fld(1e-3, ge=0.0, fix="use a non-negative entropy coefficient such as 1e-3")


@dataclass(frozen=True)
class AerCfg:
    tau: float = fld(0.4, gt=0.0, fix="the target entropy is tau * H0; use a ratio such as 0.4")
    alpha_init: float = fld(0.0, ge=0.0)
    lr: float = fld(0.05, gt=0.0, fix="the integral gain on the relative entropy error, e.g. 0.05")
    kp: float = fld(3.0, ge=0.0, fix="the proportional gain on the relative entropy error (0: integral only)")
    alpha_min: float = fld(0.0, ge=0.0)
    alpha_max: float = fld(1.0, gt=0.0)
    weight_mode: Literal["linear", "threshold"] = "linear"
    threshold: float = fld(0.5, ge=0.0, le=1.0)
    ema_blend: float = fld(0.0, ge=0.0, le=1.0, fix="0 uses base pass rates only; 1 uses only online accuracy")
    ema_decay: float = fld(0.9, ge=0.0, lt=1.0)

    def problems(self) -> list[tuple[str, object, str, str]]:
        return _box_problems(self, "alpha")


@dataclass(frozen=True)
class AentCfg:
    lambda_init: float = fld(2e-3, ge=0.0)
    clamp_p: float = fld(0.33, ge=0.0, lt=1.0)
    h_low: float = fld(0.3, ge=0.0)
    h_high: float = fld(0.5, ge=0.0)
    relative: bool = True
    beta: float = fld(2e-3, gt=0.0)
    warmup_steps: int = fld(30, ge=0)
    lambda_low: float = fld(6e-4, ge=0.0)
    lambda_high: float = fld(9e-3, gt=0.0)

    def problems(self) -> list[tuple[str, object, str, str]]:
        out = []
        if self.h_low > self.h_high:
            out.append(("h_low", self.h_low, f"exceeds h_high {self.h_high}", "use h_low <= h_high"))
        if self.lambda_low > self.lambda_high:
            out.append(("lambda_low", self.lambda_low, f"exceeds lambda_high {self.lambda_high}",
                        "use lambda_low <= lambda_high"))
        return out


@dataclass(frozen=True)
class SirenCfg:
    beta: float = fld(5e-3, ge=0.0)
    top_p: float = fld(0.8, gt=0.0, le=1.0)
    top_k: int = fld(10000, ge=1)
    rho: float = fld(0.8, ge=0.0, lt=1.0, fix="rho is the per-response quantile above which tokens count; 0.8 keeps ~20%")


@dataclass(frozen=True)
class SkyworkCfg:
    target: float = fld(0.4, gt=0.0)
    relative: bool = True
    coef_init: float = fld(0.0, ge=0.0)
    delta: float = fld(1e-4, gt=0.0)
    coef_min: float = fld(0.0, ge=0.0)
    coef_max: float = fld(5e-3, gt=0.0)

    def problems(self) -> list[tuple[str, object, str, str]]:
        return _box_problems(self, "coef")


@dataclass(frozen=True)
class ClipCovCfg:
    clip_ratio: float = fld(2e-4, gt=0.0, lt=1.0, fix="the fraction of tokens to clip, e.g. 2e-4")
    clip_lb: float = fld(1.0, ge=0.0, fix="covariance bounds are non-negative, e.g. [1, 5]")
    clip_ub: float = fld(5.0, ge=0.0, fix="covariance bounds are non-negative, e.g. [1, 5]")

    def problems(self) -> list[tuple[str, object, str, str]]:
        if self.clip_lb > self.clip_ub:
            return [("clip_lb", self.clip_lb, f"exceeds clip_ub {self.clip_ub}", "use clip_lb <= clip_ub")]
        return []


@dataclass(frozen=True)
class KLCovCfg:
    kl_ratio: float = fld(2e-3, gt=0.0, lt=1.0, fix="the fraction of tokens to penalise, e.g. 2e-3")
    kl_coef: float = fld(1.0, ge=0.0)


@dataclass(frozen=True)
class Method:
    """One entry: the module that registers the method's class, its `entropy.<name>` config, and what
    validation must know: `off_policy_only` (the mechanism acts only once the policy has moved away from
    the rollout policy, i.e. with several optimizer steps per rollout batch) and `uses_ppo_clip` (whether
    `train.clip_low/high` apply)."""
    module: str
    config: Optional[type] = None
    off_policy_only: bool = False
    uses_ppo_clip: bool = True


# train.method name -> implementation and config, in the order the choices are listed
METHODS: dict[str, Method] = {
    "none": Method("pipeline.rl.methods.grpo"),
    "grpo": Method("pipeline.rl.methods.grpo"),
    "fixed": Method("pipeline.rl.methods.fixed", FixedCfg),
    "aer": Method("pipeline.rl.methods.aer", AerCfg),
    "aent": Method("pipeline.rl.methods.aent", AentCfg),
    "siren": Method("pipeline.rl.methods.siren", SirenCfg),
    "skywork": Method("pipeline.rl.methods.skywork", SkyworkCfg),
    "clip_cov": Method("pipeline.rl.methods.clip_cov", ClipCovCfg),
    "kl_cov": Method("pipeline.rl.methods.kl_cov", KLCovCfg, off_policy_only=True, uses_ppo_clip=False),
}


def method_configs() -> dict[str, type]:
    """{name: config dataclass} of every method with an `entropy.<name>` section."""
    return {name: m.config for name, m in METHODS.items() if m.config is not None}
