"""One policy update over a rollout batch: old log-probs, micro-batched loss, backward, step.

Each micro-batch's loss is its local aggregate times (local denominator / global denominator) of the
mini-batch (denominators summed over micro-batches and ranks), times the world size because DeepSpeed
averages gradients across ranks.  So the gradient is that of the loss over the whole global
mini-batch, whatever the micro-batch split.  A non-finite loss or gradient skips the step (counted) and
nothing is written from it.  The regularizer's tracked statistic is summed over the first update's
micro-batches and all ranks and returned for the once-per-step controller update.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from pipeline.models.forward import pack, response_logprobs_entropy
from pipeline.rl.losses import masked, policy_token_losses, token_metrics
from pipeline.rl.baselines import token_covariance
from pipeline.rl.registry import regularized_loss
from pipeline.rl.regularizers import Regularizer, RegInputs
from pipeline.train.batch import RolloutBatch
from pipeline.train.distributed import all_gather_lists, all_sum, rank


@dataclass
class UpdateSettings:
    micro_batch_size: int
    updates_per_batch: int
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
    stat: float
    skipped: int = 0
    metrics: dict = field(default_factory=dict)
    token_entropy: list = field(default_factory=list)  # per response: entropies of its tokens (first update)


def _denominator(mask: torch.Tensor, mode: str) -> float:
    if mode == "token-mean":
        return float(mask.sum())
    if mode == "seq-mean-token-mean":
        return float((mask.sum(1) > 0).sum())
    return float(mask.shape[0])


def _micro(n: int, size: int) -> list[range]:
    return [range(s, min(s + size, n)) for s in range(0, n, size)]


@torch.no_grad()
def old_logprobs(model, batch: RolloutBatch, s: UpdateSettings, pad_id: int) -> list[torch.Tensor]:
    """Per micro-batch log-probs under the policy before the update (so the first ratio is exactly 1)."""
    out = []
    for idx in _micro(len(batch), s.micro_batch_size):
        b = batch.select(idx)
        lp, _, _ = response_logprobs_entropy(model, pack(b.prompt_ids, b.response_ids, pad_id),
                                             temperature=s.temperature, chunk_size=s.chunk_size)
        out.append(lp)
    return out


def _cov_selection(reg: Regularizer, parts: list[RolloutBatch], packed, olds) -> list[torch.Tensor] | None:
    """Clip-Cov/KL-Cov tokens per micro-batch, chosen once over every micro-batch of every rank (Cui et al.
    select over the batch): covariances centred on global means, from the rollout policy's log-probs."""
    if not hasattr(reg, "select_tokens"):
        return None
    masks = [pb.response_mask.to(old.device) for pb, old in zip(packed, olds)]
    adv_sum = lp_sum = n = 0.0
    for b, m, old in zip(parts, masks, olds):
        counts = m.sum(1).to(torch.float64).cpu()
        adv_sum += float((b.advantages.to(torch.float64) * counts).sum())
        lp_sum += float(masked(old, m).sum())
        n += float(counts.sum())
    a, lp, c = all_sum([adv_sum, lp_sum, n])
    means = (a / max(c, 1.0), lp / max(c, 1.0))
    covs = [token_covariance(old, b.advantages.to(old.device), m, means) for b, m, old in zip(parts, masks, olds)]
    return reg.select_tokens(covs, masks, int(c), rank=rank(), gather=all_gather_lists)


def _micro_loss(model, b: RolloutBatch, pb, old: torch.Tensor, reg: Regularizer, s: UpdateSettings,
                global_den: float, cov_select: torch.Tensor | None = None):
    """One micro-batch: forward, clipped loss + regularizer, normalised to the global mini-batch."""
    lp, ent, logits = response_logprobs_entropy(model, pb, temperature=s.temperature, chunk_size=s.chunk_size,
                                                with_logits=reg.needs_logits)
    m, dev = pb.response_mask.to(lp.device), lp.device
    adv, rates = b.advantages.to(dev), b.pass_rates.to(dev)
    per_tok, diag = policy_token_losses(lp, old, adv, m, clip_low=s.clip_low, clip_high=s.clip_high)
    out = reg.term(RegInputs(entropy=ent, mask=m, agg_mode=s.agg_mode, max_len=s.max_len, logprobs=lp,
                             old_logprobs=old, advantages=adv, logits=logits, pass_rates=rates, cov_select=cov_select))
    weight = _denominator(m, s.agg_mode) / max(global_den, 1.0) * s.world_size
    return regularized_loss(per_tok, m, out, s.agg_mode, s.max_len) * weight, out, diag, ent, m


def _local_grad_norm(engine) -> float | None:
    """Pre-clip L2 norm of this rank's full gradients (ZeRO <= 1 keeps them whole on each rank)."""
    grads = [p.grad.detach().float() for p in engine.module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else None


def _step(engine, bad: bool, s: UpdateSettings, result: "UpdateResult", sums: dict) -> None:
    """Apply the accumulated gradients, or skip the step on every rank if any rank saw a non-finite value."""
    norm = _local_grad_norm(engine) if s.zero_stage < 2 else None
    bad = bad or (norm is not None and not math.isfinite(norm))
    if all_sum([float(bad)])[0] > 0:
        engine.zero_grad()
        engine.optimizer.zero_grad()
        result.skipped += 1
        return
    engine.step()
    norm = engine.get_global_grad_norm() if norm is None else norm
    if norm is not None:
        sums["grad_norm"] = float(norm)


def update(engine, batch: RolloutBatch, reg: Regularizer, s: UpdateSettings, pad_id: int) -> UpdateResult:
    """Run `updates_per_batch` optimizer steps over the batch; returns stats and metrics."""
    model = engine.module
    model.train()
    olds = old_logprobs(model, batch, s, pad_id)
    micro = _micro(len(batch), s.micro_batch_size)
    parts = [batch.select(i) for i in micro]
    packed = [pack(b.prompt_ids, b.response_ids, pad_id) for b in parts]
    global_den = all_sum([sum(_denominator(p.response_mask, s.agg_mode) for p in packed)])[0]
    selections = _cov_selection(reg, parts, packed, olds) or [None] * len(parts)
    result, sums = UpdateResult(stat=0.0), {}
    stat_sum = stat_count = 0.0
    for epoch in range(s.updates_per_batch):
        bad = False
        for b, pb, old, sel in zip(parts, packed, olds, selections):
            loss, out, diag, ent, m = _micro_loss(model, b, pb, old, reg, s, global_den, sel)
            if bool(torch.isfinite(loss)):
                engine.backward(loss, scale_wrt_gas=False)
            else:
                bad = True  # never backpropagated; the step is skipped on every rank
            # clip fraction and KL over every epoch (epoch 0 has ratio 1 by construction); entropy
            # statistics and the loss from epoch 0, the policy that generated the rollouts
            _accumulate(sums, token_metrics(diag, m), float(m.sum()), out.metrics,
                        float(loss.detach()) if epoch == 0 else 0.0)
            if epoch == 0:
                stat_sum, stat_count = stat_sum + out.stat_sum, stat_count + out.stat_count
                result.token_entropy += [ent[r][m[r]].detach().tolist() for r in range(len(b))]
        _step(engine, bad, s, result, sums)
    total = all_sum([stat_sum, stat_count])
    result.stat = total[0] / max(total[1], 1.0)
    result.metrics = _finish(sums)
    return result


def _accumulate(sums: dict, tok: dict, n_tokens: float, reg_metrics: dict, loss: float) -> None:
    sums["_tokens"] = sums.get("_tokens", 0.0) + n_tokens
    for k, v in tok.items():
        sums[k] = sums.get(k, 0.0) + v * n_tokens
    sums["loss"] = sums.get("loss", 0.0) + loss
    for k, v in reg_metrics.items():
        sums[k] = v  # regularizer metrics are per step (coefficient, target), keep the latest


def _finish(sums: dict) -> dict:
    n = max(sums.pop("_tokens", 0.0), 1.0)
    out = {}
    for k, v in sums.items():
        out[k] = v / n if k in ("clip_frac", "clip_frac_low", "clip_frac_high", "ratio_mean", "approx_kl") else v
    return {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}
