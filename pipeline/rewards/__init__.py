"""Verifiable math rewards: `score_batch(completions, golds) -> list[RewardResult]`."""
from pipeline.rewards.extract import extract_boxed
from pipeline.rewards.verify import (STATUSES, RewardResult, VerifierPool, answers_equivalent, check_golds,
                                     default_pool, score_batch)

__all__ = ["extract_boxed", "score_batch", "check_golds", "answers_equivalent", "RewardResult",
           "VerifierPool", "default_pool", "STATUSES"]
