"""The method plug-in interface: what generic code (update, loop, measurement, stages) may ask a method.

A method is one `Regularizer` subclass with one config dataclass (`Config`, the `entropy.<name>` section
of params.yaml, declared with the method's entry in `pipeline/config/methods.py`), registered with
`@register`.  Generic code never names a method; it asks through hooks:

* `heads()` / `needs_policy_pass` / `cadence`: what the update must provide (per-token statistics of the
  distribution beyond the entropy, computed chunk-wise from hidden states without [B,T,V] logits; a
  no-grad pass of the current policy before the backward passes), and when the controller
  updates ("rollout": once per rollout step, from the rollout policy's statistic; "optimizer": once per
  optimizer step, from the current policy's).  What validation must know (whether the mechanism acts at
  importance ratio 1, whether `train.clip_*` apply) is in the method's entry in pipeline/config/methods.py.
* `micro_stats(inp)` -> `batch_context(stats, comm)`: batch statistics (normalisations, quantiles,
  top-k, selected entropies) computed once over the global mini-batch, across ranks, before any backward
  pass, then handed to every micro-batch as its `ctx`.  This is what makes an update independent of how
  the batch is split into micro-batches and ranks.
* `policy_loss(inp, ctx)`: per-token policy losses (default: the PPO-clip surrogate).
* `term(inp, ctx)`: the regulariser's contribution to the global loss for one micro-batch.
* `tracked(inp)` + `update(value, step)`: the controller's statistic and its once-per-cadence update;
  a non-finite statistic is ignored (coefficient kept, event counted, warned).
* `difficulty`/`observe` (per-sample inputs), `guides` (targets and bands to plot), `anchor_stats`
  (anchors the entropy stage measures on the base policy), `from_config` (params -> object).

Every loss is a *contribution to the global mean*: local sums divided by global denominators
(`Denoms`), so micro-batch losses add up to the loss of the whole global mini-batch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Optional

import torch

from pipeline.rl.losses import masked, policy_token_losses


@dataclass(frozen=True)
class Denoms:
    """Global denominators of one optimizer step (summed over micro-batches and ranks)."""
    tokens: float       # valid response tokens
    seqs: float         # sequences with at least one valid token
    samples: float      # sequences, empty ones included
    max_len: int        # the configured generation length (Dr.GRPO's constant normaliser)


@dataclass
class RegInputs:
    """One micro-batch.  entropy, mask, logprobs, old_logprobs: [B,T]; advantages, pass_rates [B];
    extra: {name: [B,T]} for each of the method's `heads()`.  For `micro_stats` of a method without
    `needs_policy_pass` only the data fields (mask, advantages, pass_rates, old_logprobs) are set."""
    entropy: Optional[torch.Tensor]
    mask: torch.Tensor
    denoms: Denoms
    agg_mode: str = "token-mean"
    logprobs: Optional[torch.Tensor] = None
    old_logprobs: Optional[torch.Tensor] = None
    advantages: Optional[torch.Tensor] = None
    pass_rates: Optional[torch.Tensor] = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    clip_low: float = 0.2
    clip_high: float = 0.2


@dataclass
class RegOutput:
    term: torch.Tensor                                     # scalar contribution to the global loss
    metrics: dict[str, float] = field(default_factory=dict)
    sample_values: dict[str, torch.Tensor] = field(default_factory=dict)  # [B] per-sample values to log


@dataclass
class Comm:
    """The collectives a method may use in `batch_context`: element-wise sums and list gathers over ranks."""
    sum: Callable[[list[float]], list[float]]
    gather: Callable[[list], list[list]]
    rank: int = 0
    world: int = 1


def local_comm() -> Comm:
    return Comm(sum=lambda v: list(v), gather=lambda v: [list(v)])


def global_aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str, d: Denoms) -> torch.Tensor:
    """values [B,T] -> scalar contribution of this micro-batch to the global aggregate (see losses.aggregate):
    token-mean: sum / global tokens; seq-mean-token-mean: sum of sequence means / global sequences;
    seq-mean-token-sum-norm (Dr.GRPO): sum / (global samples * max_len)."""
    m = mask.bool()
    v = masked(values, m)
    if mode == "token-mean":
        return v.sum() / max(d.tokens, 1.0)
    if mode == "seq-mean-token-mean":
        return (v.sum(1) / m.sum(1).clamp(min=1)).sum() / max(d.seqs, 1.0)
    if mode == "seq-mean-token-sum-norm":
        return v.sum() / (max(d.samples, 1.0) * d.max_len)
    raise ValueError(f"unknown aggregation mode {mode!r}")


def entropy_sum(entropy: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    m = mask.bool()
    return float(masked(entropy.detach(), m).sum()), float(m.sum())


class StepGuard:
    """Refuses a second controller update in the same step (the per-micro-batch update pitfall)."""

    def __init__(self) -> None:
        self.last_step = -1

    def check(self, step: int) -> None:
        if step <= self.last_step:
            raise RuntimeError(f"controller updated twice at step {step} (last update at {self.last_step}); "
                               "update once per step with the global statistic, not per micro-batch")
        self.last_step = step


class Regularizer:
    """GRPO's clipped loss with no entropy term; the base of every method."""
    name: ClassVar[str] = "none"
    aliases: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[Optional[type]] = None
    needs_policy_pass: ClassVar[bool] = False
    cadence: ClassVar[str] = "rollout"

    def __init__(self) -> None:
        self.guard = StepGuard()

    # ---- construction and measurement --------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, anchors: dict, seed: int) -> "Regularizer":
        """params.yaml's `entropy.<name>` section (None for methods without one), the entropy stage's
        anchors (h0.json) and the run seed -> the method object."""
        return cls(**asdict(cfg)) if cfg is not None else cls()

    @classmethod
    def anchor_heads(cls, cfg: Any) -> dict[str, Callable]:
        """The heads `anchor_stats` needs (the entropy stage computes them on the base policy)."""
        return {}

    @classmethod
    def anchor_stats(cls, cfg: Any, inp: RegInputs) -> dict[str, tuple[float, float]]:
        """Named (sum, count) statistics of the base policy that the entropy stage records in h0.json."""
        return {}

    def heads(self) -> dict[str, Callable]:
        """Per-token statistics the method reads from `RegInputs.extra`: name -> fn(hidden [N,D], weight
        [V,D], *, temperature, chunk_size) -> [N], computed inside the policy's forward without logits."""
        return {}

    # ---- per-sample inputs ---------------------------------------------------------------------------
    def observe(self, problem_ids: list[str], accuracies: list[float]) -> None:
        """Every rank's prompts and group accuracies of this rollout step (identical on every rank)."""

    def difficulty(self, problem_ids: list[str], base_rates: torch.Tensor) -> torch.Tensor:
        """[P] pass rates this method uses for the given prompts (default: the base model's)."""
        return base_rates

    # ---- batch statistics and losses ---------------------------------------------------------------
    def micro_stats(self, inp: RegInputs) -> Any:
        return None

    def batch_context(self, stats: list, comm: Comm) -> list[dict]:
        return [{} for _ in stats]

    def policy_loss(self, inp: RegInputs, ctx: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-token policy losses [B,T] and diagnostics (the PPO-clip surrogate, asymmetric bounds)."""
        return policy_token_losses(inp.logprobs, inp.old_logprobs, inp.advantages, inp.mask,
                                   clip_low=inp.clip_low, clip_high=inp.clip_high)

    def term(self, inp: RegInputs, ctx: dict) -> RegOutput:
        return RegOutput(inp.entropy.new_zeros(()))

    # ---- controller -------------------------------------------------------------------------------
    def tracked(self, inp: RegInputs) -> tuple[float, float]:
        """(sum, count) of the statistic the controller tracks (token entropy by default)."""
        return entropy_sum(inp.entropy, inp.mask)

    def update(self, value: float, step: int) -> dict[str, float]:
        """Once per cadence step (`cadence`) with the global statistic; returns metrics.  A non-finite
        value leaves every coefficient as it is (the controllers count and warn)."""
        self.guard.check(step)
        out = self._update(float(value))
        if math.isfinite(float(value)):
            out["reg/tracked"] = float(value)
        return out

    def _update(self, value: float) -> dict[str, float]:
        return self.coefficients()

    def coefficients(self) -> dict[str, float]:
        """The current coefficient and target as metrics (`reg/coef`, `reg/target`)."""
        return {}

    def guides(self) -> dict[str, Any]:
        """What plots draw: {"target": float} and/or {"band": (lo, hi)}, on the curve of "metric" (default
        "entropy", the token entropy; "reg/tracked" when the controller tracks another statistic)."""
        return {}

    # ---- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"last_step": self.guard.last_step}

    def load_state_dict(self, state: dict) -> None:
        self.guard.last_step = state["last_step"]


class Controlled(Regularizer):
    """A method whose coefficient comes from a controller (`self.controller`, see pipeline.rl.controllers)."""
    controller: Any

    def _update(self, value: float) -> dict[str, float]:
        self.controller.update(value)
        return self.coefficients()

    def coefficients(self) -> dict[str, float]:
        out = {"reg/coef": float(self.controller.coef)}
        if self.controller.nonfinite:
            out["reg/nonfinite_stats"] = float(self.controller.nonfinite)
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "controller": self.controller.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])


REGISTRY: dict[str, type[Regularizer]] = {}


def register(cls: type[Regularizer]) -> type[Regularizer]:
    """Class decorator: make a method selectable as `train.method: <cls.name>` (and its aliases)."""
    for name in (cls.name, *cls.aliases):
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} registered twice")
        REGISTRY[name] = cls
    return cls
