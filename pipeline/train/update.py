"""One policy update over a rollout batch: PPO mini-batches of split-invariant optimizer steps.

Following verl's actor update (`ppo_mini_batch_size`, `ppo_epochs`): old log-probs are computed once, by
a no-grad pass of the rollout policy, before the first optimizer step; the rollout batch is then split
into `mini_batch_size` (global samples per optimizer step) and walked `updates_per_batch` times.  Each
optimizer step is independent of how its mini-batch is split into micro-batches and ranks:

1. global denominators (tokens, sequences, samples) are summed over micro-batches and ranks;
2. the method's batch statistics (`micro_stats` -> `batch_context`) are computed once over the global
   mini-batch before any backward pass (after a no-grad pass of the current policy when the method needs
   one, e.g. SIREN's selected entropy or Clip-Cov/KL-Cov's covariance selection);
3. each micro-batch's loss is its contribution to the global mean (local sums over global denominators),
   times the world size because DeepSpeed averages gradients across ranks.

A non-finite loss or gradient skips that optimizer step on every rank (counted); under ZeRO >= 2, where
only DeepSpeed sees the whole gradient, a step it skipped for overflow (reported as a non-finite global
grad norm) counts the same.  The rollout policy's statistics (token entropies, the controller statistic)
come from the old-log-prob pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from pipeline.models.forward import pack, response_logprobs_entropy
from pipeline.rl.losses import token_metrics
from pipeline.rl.methods.base import Comm, Denoms, RegInputs, Regularizer, global_aggregate
from pipeline.train.batch import RolloutBatch
from pipeline.train.distributed import all_gather_lists, all_sum, rank


@dataclass
class UpdateSettings:
    micro_batch_size: int        # samples per forward/backward on one rank
    mini_batch_size: int         # samples per optimizer step on one rank (global mini-batch / world)
    updates_per_batch: int       # passes (epochs) over the rollout batch
    clip_low: float
    clip_high: float
    agg_mode: str
    max_len: int
    temperature: float
    chunk_size: int
    world_size: int
    zero_stage: int


@dataclass
class UpdateResult:
    stat: Optional[float]                                      # rollout policy's controller statistic (global)
    skipped: int = 0                                           # optimizer steps skipped (non-finite)
    metrics: dict = field(default_factory=dict)
    reg_metrics: dict = field(default_factory=dict)
    token_entropy: list = field(default_factory=list)          # per local response: its tokens' entropies
    sample_values: dict = field(default_factory=dict)          # name -> per local sample (first epoch)
    grad_norms: list = field(default_factory=list)             # per optimizer step (aligned with losses): None if
                                                               # skipped or unreported, so k is the step's index
    losses: list = field(default_factory=list)                 # global loss of every optimizer step


def comm() -> Comm:
    return Comm(sum=all_sum, gather=all_gather_lists, rank=rank(), world=torch.distributed.get_world_size()
                if torch.distributed.is_initialized() else 1)


def _micro(n: int, size: int) -> list[range]:
    return [range(s, min(s + size, n)) for s in range(0, n, size)]


def _scatter(values: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Per-sample response values -> [B,T] aligned with `mask` (zeros elsewhere)."""
    flat = torch.cat(values).to(mask.device) if values else torch.zeros(0, device=mask.device)
    return torch.zeros(mask.shape, dtype=flat.dtype, device=mask.device).masked_scatter(mask.bool(), flat)


def _inputs(b: RolloutBatch, pb, s: UpdateSettings, denoms: Denoms, lp=None, ent=None, extra=None,
            old: Optional[list[torch.Tensor]] = None) -> RegInputs:
    m = pb.response_mask.to(lp.device if lp is not None else "cpu")
    return RegInputs(entropy=ent, mask=m, denoms=denoms, agg_mode=s.agg_mode, logprobs=lp,
                     old_logprobs=_scatter(old, m) if old is not None else None,
                     advantages=b.advantages.to(m.device), pass_rates=b.pass_rates.to(m.device), extra=extra or {},
                     clip_low=s.clip_low, clip_high=s.clip_high)


def _forward(model, pb, s: UpdateSettings, reg: Regularizer):
    return response_logprobs_entropy(model, pb, temperature=s.temperature, chunk_size=s.chunk_size,
                                     heads=reg.heads())


def local_denoms(packed: list) -> list[float]:
    """[tokens, sequences with a token, samples] of this rank's micro-batches."""
    tokens = sum(float(p.response_mask.sum()) for p in packed)
    seqs = sum(float((p.response_mask.sum(1) > 0).sum()) for p in packed)
    return [tokens, seqs, float(sum(p.response_mask.shape[0] for p in packed))]


@torch.no_grad()
def rollout_pass(model, batch: RolloutBatch, reg: Regularizer, s: UpdateSettings, pad_id: int):
    """The rollout policy's per-sample log-probs and entropies, and the controller statistic (sum, count)."""
    olds, ents, tracked = [], [], [0.0, 0.0]
    dummy = Denoms(1.0, 1.0, 1.0, s.max_len)
    for idx in _micro(len(batch), s.micro_batch_size):
        b = batch.select(idx)
        pb = pack(b.prompt_ids, b.response_ids, pad_id)
        lp, ent, extra = _forward(model, pb, s, reg)
        m = pb.response_mask.to(lp.device)
        olds += [lp[r][m[r]].detach() for r in range(len(b))]
        ents += [ent[r][m[r]].detach() for r in range(len(b))]
        t = reg.tracked(_inputs(b, pb, s, dummy, lp, ent, extra))
        tracked = [tracked[0] + t[0], tracked[1] + t[1]]
    return olds, ents, tracked


@dataclass
class StepOutput:
    loss: float                   # global loss of the optimizer step (summed over micro-batches and ranks)
    bad: bool                     # a non-finite loss on this rank
    tracked: list                 # [sum, count] of the controller statistic under the pre-step policy
    metrics: dict
    sample_values: dict


def accumulate(model, backward: Callable[[torch.Tensor], None], mb: RolloutBatch, olds: list[torch.Tensor],
               reg: Regularizer, s: UpdateSettings, pad_id: int, c: Comm) -> StepOutput:
    """Forward/backward of one optimizer step's local mini-batch `mb`, gradients left accumulated."""
    micro = _micro(len(mb), s.micro_batch_size)
    parts = [mb.select(i) for i in micro]
    packed = [pack(b.prompt_ids, b.response_ids, pad_id) for b in parts]
    old_parts = [[olds[j] for j in i] for i in micro]
    tok, seqs, samples = c.sum(local_denoms(packed))
    denoms = Denoms(tok, seqs, samples, s.max_len)
    ctxs = reg.batch_context([reg.micro_stats(_stats_inputs(model, b, pb, o, s, reg, denoms))
                              for b, pb, o in zip(parts, packed, old_parts)], c)
    loss_sum, bad, tracked, sums, values = 0.0, False, [0.0, 0.0], {}, {}
    for b, pb, old, ctx in zip(parts, packed, old_parts, ctxs):
        lp, ent, extra = _forward(model, pb, s, reg)
        inp = _inputs(b, pb, s, denoms, lp, ent, extra, old)
        per_tok, diag = reg.policy_loss(inp, ctx)
        out = reg.term(inp, ctx)
        loss = global_aggregate(per_tok, inp.mask, s.agg_mode, denoms) + out.term
        if bool(torch.isfinite(loss)):
            backward(loss * s.world_size)  # DeepSpeed averages gradients over ranks; the loss is a global sum
        else:
            bad = True  # never backpropagated; the step is skipped on every rank
        loss_sum += float(loss.detach())
        if reg.cadence == "optimizer":
            t = reg.tracked(inp)
            tracked = [tracked[0] + t[0], tracked[1] + t[1]]
        _accumulate(sums, token_metrics(diag, inp.mask), float(inp.mask.sum()), out.metrics)
        for k, v in out.sample_values.items():
            values.setdefault(k, []).extend(v.detach().cpu().tolist())
    return StepOutput(c.sum([loss_sum])[0], bad, tracked, sums, values)


def _stats_inputs(model, b, pb, old, s, reg, denoms) -> RegInputs:
    """What `micro_stats` sees: a no-grad pass of the current policy if the method needs one, else data only."""
    if not reg.needs_policy_pass:
        return _inputs(b, pb, s, denoms, old=old)
    with torch.no_grad():
        lp, ent, extra = _forward(model, pb, s, reg)
    return _inputs(b, pb, s, denoms, lp, ent, extra, old)


def _local_grad_norm(engine) -> float | None:
    """Pre-clip L2 norm of this rank's full gradients (ZeRO <= 1 keeps them whole on each rank)."""
    grads = [p.grad.detach().float() for p in engine.module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else None


def _step(engine, bad: bool, s: UpdateSettings) -> Optional[float]:
    """Apply the accumulated gradients and return the grad norm (NaN when DeepSpeed reports none), or
    None when the step was skipped on every rank because some rank saw a non-finite value."""
    norm = _local_grad_norm(engine) if s.zero_stage < 2 else None
    bad = bad or (norm is not None and not math.isfinite(norm))
    if all_sum([float(bad)])[0] > 0:
        engine.zero_grad()
        engine.optimizer.zero_grad()
        return None
    engine.step()
    if norm is not None:
        return norm
    # ZeRO >= 2 partitions the gradients, so only DeepSpeed sees the whole norm; it skips an overflowed
    # step itself and reports a non-finite global norm, which is the same skip as ours above
    norm = engine.get_global_grad_norm()
    if norm is None:
        return float("nan")
    return float(norm) if math.isfinite(float(norm)) else None


def minibatches(n: int, s: UpdateSettings) -> list[range]:
    return _micro(n, s.mini_batch_size)


def update(engine, batch: RolloutBatch, reg: Regularizer, s: UpdateSettings, pad_id: int, step: int) -> UpdateResult:
    """Run `updates_per_batch` passes of mini-batch optimizer steps over the batch; `step` is the rollout
    step (controllers on the optimizer cadence count steps as step * steps_per_rollout + k)."""
    model = engine.module
    model.train()
    c = comm()
    olds, ents, tracked = rollout_pass(model, batch, reg, s, pad_id)
    total = c.sum(tracked)
    result = UpdateResult(stat=total[0] / total[1] if total[1] else None,
                          token_entropy=[e.tolist() for e in ents])
    minis = minibatches(len(batch), s)
    sums: dict = {}
    for epoch in range(s.updates_per_batch):
        for k, idx in enumerate(minis):
            out = accumulate(model, lambda loss: engine.backward(loss, scale_wrt_gas=False), batch.select(idx),
                             [olds[j] for j in idx], reg, s, pad_id, c)
            norm = _step(engine, out.bad, s)
            result.losses.append(out.loss)
            result.skipped += int(norm is None)
            result.grad_norms.append(norm if norm is not None and math.isfinite(norm) else None)
            for key, val in out.metrics.items():
                sums[key] = val if key.startswith("_last/") else sums.get(key, 0.0) + val
            if epoch == 0:
                for key, vals in out.sample_values.items():
                    result.sample_values.setdefault(key, []).extend(vals)
            if reg.cadence == "optimizer":
                t = c.sum(out.tracked)
                result.reg_metrics = reg.update(t[0] / t[1] if t[1] else float("nan"),
                                                (step * s.updates_per_batch + epoch) * len(minis) + k)
    if reg.cadence == "rollout":
        result.reg_metrics = reg.update(result.stat if result.stat is not None else float("nan"), step)
    keys = sorted(k for k in sums if not k.startswith("_last/"))  # token-weighted sums: add over ranks
    sums.update(zip(keys, c.sum([sums[k] for k in keys])))
    result.metrics = _finish(sums, result)
    return result


def _accumulate(sums: dict, tok: dict, n_tokens: float, reg_metrics: dict) -> None:
    sums["_tokens"] = sums.get("_tokens", 0.0) + n_tokens
    for k, v in tok.items():
        sums[k] = sums.get(k, 0.0) + v * n_tokens
    for k, v in reg_metrics.items():
        sums[f"_last/{k}"] = v  # per-step values (coefficient, target): keep the latest


def _finish(sums: dict, result: UpdateResult) -> dict:
    n = max(sums.pop("_tokens", 0.0), 1.0)
    out = {k[len("_last/"):] if k.startswith("_last/") else k: (v if k.startswith("_last/") else v / n)
           for k, v in sums.items()}
    finite = [x for x in result.losses if math.isfinite(x)]
    if finite:
        out["loss"] = sum(finite) / len(finite)
    norms = [n for n in result.grad_norms if n is not None]
    if norms:
        out["grad_norm"] = sum(norms) / len(norms)
        out["grad_norm_max"] = max(norms)
    out["optimizer_steps"] = float(len(result.losses) - result.skipped)
    return {k: v for k, v in out.items() if isinstance(v, float) and math.isfinite(v)}
