"""The initial entropy H0 that anchors AER's target (H* = tau H0), plus SIREN's and AEnt's anchors.

H0 is the base policy's token-mean entropy over its own sampled responses to training prompts,
computed by a teacher-forced forward pass with the memory-bounded fused entropy (vLLM returns only
top-k log-probs, not entropies).  Reported overall and per difficulty bucket with token counts and a
bootstrap CI over responses.  The anchors methods ask for (`Regularizer.anchor_stats`: SIREN's
selected-entropy anchor, AEnt's clamped entropy) are measured on the same responses, so the trainer starts
every method from the same measurement.
"""
from __future__ import annotations

from typing import Sequence

import torch

from pipeline.data.prompts import format_prompt
from pipeline.data.schema import Problem
from pipeline.eval.metrics import bootstrap_ratio_ci
from pipeline.models.forward import pack, response_logprobs_entropy
from pipeline.rl.methods.base import Denoms, RegInputs
from pipeline.rollout.types import SamplingConfig
from pipeline.utils.progress import label, progress


@torch.no_grad()
def response_entropies(model, prompt_ids: list[list[int]], responses: list[list[int]], pad_id: int, *,
                       temperature: float, chunk_size: int, anchors: dict | None = None,
                       micro_batch: int = 16) -> dict[str, list[float]]:
    """Per response: entropy sum and token count; plus, for each anchor name a method measures
    (`anchors`: name -> (method class, its config), see `Regularizer.anchor_stats`), its summed (sum, count)."""
    anchors = anchors or {}
    heads = {name: fn for cls, cfg in anchors.values() for name, fn in cls.anchor_heads(cfg).items()}
    out: dict = {"sum": [], "count": [], "anchors": {}}
    for s in progress(range(0, len(responses), micro_batch), desc="entropy: teacher-forced pass", unit="batch"):
        batch = pack(prompt_ids[s:s + micro_batch], responses[s:s + micro_batch], pad_id)
        _, ent, extra = response_logprobs_entropy(model, batch, temperature=temperature, chunk_size=chunk_size,
                                                  heads=heads)
        m = batch.response_mask
        out["sum"] += (ent * m).sum(1).tolist()
        out["count"] += m.sum(1).tolist()
        inp = RegInputs(entropy=ent, mask=m, denoms=Denoms(1.0, 1.0, 1.0, m.shape[1]), extra=extra)
        for cls, cfg in anchors.values():
            for key, (total, count) in cls.anchor_stats(cfg, inp).items():
                prev = out["anchors"].get(key, (0.0, 0.0))
                out["anchors"][key] = (prev[0] + total, prev[1] + count)
    return out


def measure(model, tokenizer, engine, problems: Sequence[Problem], buckets: dict[str, str], *, template: str,
            use_chat_template: bool, sampling: SamplingConfig, temperature: float, chunk_size: int, bootstrap: int,
            anchors: dict | None = None) -> dict:
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
                               chunk_size=chunk_size, anchors=anchors)
    return summarise(stats, owners, buckets, bootstrap, sampling.seed)


# the keys `summarise` writes itself; every other key of its result is an anchor a method asked for
SUMMARY_KEYS = ("h0", "n_tokens", "n_responses", "h0_ci95", "per_bucket")


def anchors_of(result: dict) -> dict:
    """The method anchors of a `summarise` result (e.g. SIREN's, AEnt's), whatever methods are registered."""
    return {k: v for k, v in result.items() if k not in SUMMARY_KEYS}


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
    for key, (total, count) in stats["anchors"].items():
        result[key] = total / max(count, 1.0)
    return result
