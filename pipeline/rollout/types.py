"""Rollout data types shared by both backends."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.utils.seeding import derive_seed


@dataclass(frozen=True)
class Completion:
    """One sampled response: generated token ids (EOS included when emitted), decoded text (special
    tokens skipped), the log-prob of each sampled token under the raw model distribution (temperature 1,
    no top-p; vLLM's default `raw_logprobs`), finish reason ('stop' or 'length') and its seed."""
    token_ids: tuple[int, ...]
    text: str
    logprobs: tuple[float, ...]
    finish_reason: str
    seed: int


@dataclass(frozen=True)
class SamplingConfig:
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int


def sample_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """Per-sample seed: a request reproduces whatever else is in the batch."""
    return derive_seed(seed, "rollout", prompt_index, sample_index)
