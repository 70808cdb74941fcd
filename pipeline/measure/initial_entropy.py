"""The initial entropy H0 that anchors AER's target (H* = tau H0), plus SIREN's and AEnt's anchors.

H0 is the base policy's token-mean entropy over its own sampled responses to training prompts,
computed by a teacher-forced forward pass with the memory-bounded fused entropy (vLLM returns only
top-k log-probs, not entropies).  Reported overall and per difficulty bucket with token counts and a
bootstrap CI over responses.  SIREN's selected-entropy anchor and AEnt's clamped entropy are measured on
the same responses, so the trainer starts every method from the same measurement.
"""
from __future__ import annotations

from typing import Sequence

import torch

from pipeline.data.prompts import format_prompt
from pipeline.data.schema import Problem
from pipeline.eval.metrics import bootstrap_ratio_ci
from pipeline.models.forward import pack, response_logprobs_entropy
from pipeline.rl.baselines import Siren
from pipeline.rl.entropy import clamped_entropy
from pipeline.rollout.types import SamplingConfig
from pipeline.utils.progress import label, progress


@torch.no_grad()
def response_entropies(model, prompt_ids: list[list[int]], responses: list[list[int]], pad_id: int, *,
                       temperature: float, chunk_size: int, siren: Siren | None, aent_clamp_p: float | None,
                       micro_batch: int = 16) -> dict[str, list[float]]:
    """Per response: entropy sum, token count, and (optional) SIREN selected / AEnt clamped statistics."""
    out: dict[str, list[float]] = {"sum": [], "count": [], "siren_sel": [], "siren_has": [], "aent_sum": []}
    for s in progress(range(0, len(responses), micro_batch), desc="entropy: teacher-forced pass", unit="batch"):
        batch = pack(prompt_ids[s:s + micro_batch], responses[s:s + micro_batch], pad_id)
        need_logits = siren is not None or aent_clamp_p is not None
        _, ent, logits = response_logprobs_entropy(model, batch, temperature=temperature, chunk_size=chunk_size,
                                                   with_logits=need_logits)
        m = batch.response_mask
        out["sum"] += (ent * m).sum(1).tolist()
        out["count"] += m.sum(1).tolist()
        if siren is not None:
            per_seq, has = siren.selected_entropy(logits, m)
            out["siren_sel"] += per_seq.tolist()
            out["siren_has"] += has.float().tolist()
        if aent_clamp_p is not None:
            out["aent_sum"] += (clamped_entropy(logits, clamp_p=aent_clamp_p) * m).sum(1).tolist()
    return out


def measure(model, tokenizer, engine, problems: Sequence[Problem], buckets: dict[str, str], *, template: str,
            use_chat_template: bool, sampling: SamplingConfig, temperature: float, chunk_size: int, bootstrap: int,
            siren: Siren | None = None, aent_clamp_p: float | None = None) -> dict:
    """Sample responses with the rollout engine, then measure entropies teacher-forced."""
    prompts = [format_prompt(p.problem, template, tokenizer, use_chat_template) for p in problems]
    with label("entropy"):
        completions = engine.generate(prompts, sampling)
    prompt_ids, responses, owners = [], [], []
    for p, text, row in zip(problems, prompts, completions):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for c in row:
            if c.token_ids:
                prompt_ids.append(ids)
                responses.append(list(c.token_ids))
                owners.append(p.id)
    stats = response_entropies(model, prompt_ids, responses, tokenizer.pad_token_id, temperature=temperature,
                               chunk_size=chunk_size, siren=siren, aent_clamp_p=aent_clamp_p)
    return summarise(stats, owners, buckets, bootstrap, sampling.seed)


def summarise(stats: dict[str, list[float]], owners: list[str], buckets: dict[str, str], bootstrap: int,
              seed: int) -> dict:
    total, count = sum(stats["sum"]), sum(stats["count"])
    result = {"h0": total / max(count, 1), "n_tokens": int(count), "n_responses": len(stats["sum"]),
              "h0_ci95": list(bootstrap_ratio_ci(stats["sum"], stats["count"], resamples=bootstrap, seed=seed))}
    per_bucket = {}
    for b in sorted(set(buckets.get(o, "unknown") for o in owners)):
        idx = [i for i, o in enumerate(owners) if buckets.get(o, "unknown") == b]
        s, c = [stats["sum"][i] for i in idx], [stats["count"][i] for i in idx]
        per_bucket[b] = {"h0": sum(s) / max(sum(c), 1), "n_tokens": int(sum(c)), "n_responses": len(idx),
                         "h0_ci95": list(bootstrap_ratio_ci(s, c, resamples=bootstrap, seed=seed))}
    result["per_bucket"] = per_bucket
    if stats["siren_has"]:
        n = sum(stats["siren_has"])
        result["siren_anchor"] = sum(v * h for v, h in zip(stats["siren_sel"], stats["siren_has"])) / max(n, 1)
    if stats["aent_sum"]:
        result["aent_clamped_entropy"] = sum(stats["aent_sum"]) / max(count, 1)
    return result
