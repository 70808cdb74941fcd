"""Prompt sampling with a resumable cursor, and the rollout batch the update consumes.

The sampler walks seeded per-epoch permutations of the training prompts; its whole state is one
integer cursor, so a resumed run draws exactly the prompts an uninterrupted run would.  With several
ranks each rank takes its part of every global mini-batch (`shard`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch

from pipeline.data.schema import Problem
from pipeline.utils.seeding import derive_seed


class PromptSampler:
    def __init__(self, problems: Sequence[Problem], seed: int, cursor: int = 0) -> None:
        if not problems:
            raise ValueError("PromptSampler: no training prompts (check the difficulty filters)")
        self.problems, self.seed, self.cursor = list(problems), seed, cursor

    def _epoch(self, epoch: int) -> list[Problem]:
        return random.Random(derive_seed(self.seed, "epoch", epoch)).sample(self.problems, len(self.problems))

    def next(self, k: int) -> list[Problem]:
        n = len(self.problems)
        out = [self._epoch((self.cursor + i) // n)[(self.cursor + i) % n] for i in range(k)]
        self.cursor += k
        return out


def shard(items: list, rank: int, world: int, chunks: int = 1) -> list:
    """This rank's share of a step's prompts.  The step's prompts form `chunks` consecutive global
    mini-batches; each rank takes its contiguous part of every one, so local mini-batch k on every rank
    together make global mini-batch k, whatever the number of ranks."""
    size = len(items) // chunks
    per = size // world
    return [x for c in range(chunks) for x in items[c * size + rank * per:c * size + (rank + 1) * per]]


@dataclass
class RolloutBatch:
    """Per sample (B = prompts x group_size): prompt/response token ids, rewards [B], advantages [B],
    base pass rates [B], prompt ids, difficulty buckets, finish reasons and reward statuses."""
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    rewards: torch.Tensor
    advantages: torch.Tensor
    pass_rates: torch.Tensor
    problem_ids: list[str]
    buckets: list[str]
    truncated: list[bool]
    statuses: list[str]

    def __len__(self) -> int:
        return len(self.response_ids)

    def select(self, idx: Sequence[int]) -> "RolloutBatch":
        pick = list(idx)
        t = torch.tensor(pick, dtype=torch.long)
        return RolloutBatch([self.prompt_ids[i] for i in pick], [self.response_ids[i] for i in pick],
                            self.rewards[t], self.advantages[t], self.pass_rates[t],
                            [self.problem_ids[i] for i in pick], [self.buckets[i] for i in pick],
                            [self.truncated[i] for i in pick], [self.statuses[i] for i in pick])
