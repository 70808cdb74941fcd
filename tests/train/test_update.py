"""The policy update's bookkeeping on a fake DeepSpeed engine and a two-parameter policy (fast, no model
fixture): which optimizer steps count as skipped, and where each grad norm is logged."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from pipeline.rl.registry import build_regularizer
from pipeline.train.batch import RolloutBatch
from pipeline.train.loop import log_grad_norms
from pipeline.train.update import UpdateSettings, update

VOCAB, PAD = 8, 0


class TinyPolicy(torch.nn.Module):
    """What `response_logprobs_entropy` needs of a causal LM: embeddings, a base model, an output head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(VOCAB, 4)
        self.head = torch.nn.Linear(4, VOCAB, bias=False)

    def get_input_embeddings(self):
        return self.emb

    def get_output_embeddings(self):
        return self.head

    def base_model(self, input_ids, attention_mask):
        return SimpleNamespace(last_hidden_state=self.emb(input_ids))


class FakeEngine:
    """A ZeRO >= 2 DeepSpeed engine as `update` sees it: the global grad norm comes from `norms`, one per
    `step()` (DeepSpeed reports inf after skipping an overflowed step)."""

    def __init__(self, norms: list) -> None:
        self.module, self.norms, self.norm, self.steps = TinyPolicy(), list(norms), None, 0
        self.optimizer = SimpleNamespace(zero_grad=lambda: None)

    def backward(self, loss, scale_wrt_gas=False):
        loss.backward()

    def step(self):
        self.norm = self.norms.pop(0)
        self.steps += 1
        self.module.zero_grad()

    def zero_grad(self):
        self.module.zero_grad()

    def get_global_grad_norm(self):
        return self.norm


def _batch(n: int = 4) -> RolloutBatch:
    rewards = torch.tensor([1.0, 0.0] * (n // 2))
    return RolloutBatch(prompt_ids=[[1, 2]] * n, response_ids=[[3, 4, 5]] * n, rewards=rewards,
                        advantages=rewards - 0.5, pass_rates=torch.full((n,), 0.5), problem_ids=["p"] * n,
                        buckets=["b"] * n, truncated=[False] * n, statuses=["ok"] * n)


def _settings(zero_stage: int = 2) -> UpdateSettings:
    return UpdateSettings(micro_batch_size=2, mini_batch_size=2, updates_per_batch=1, clip_low=0.2, clip_high=0.2,
                          agg_mode="token-mean", max_len=3, temperature=1.0, chunk_size=64, world_size=1,
                          zero_stage=zero_stage)


def test_zero2_overflow_reported_by_deepspeed_counts_as_a_skipped_step_regression():
    """With ZeRO >= 2 the trainer computes no grad norm itself; DeepSpeed's inf norm after an overflowed
    step was dropped as 'not finite' without counting a skip, so max_consecutive_skips never stopped a run."""
    engine = FakeEngine([float("inf"), 1.5])
    result = update(engine, _batch(), build_regularizer("none"), _settings(zero_stage=2), PAD, step=0)
    assert engine.steps == 2 and len(result.losses) == 2
    assert result.skipped == 1
    assert result.metrics["optimizer_steps"] == 1.0
    assert result.metrics["grad_norm"] == 1.5


class Tracker:
    def __init__(self) -> None:
        self.logged: list[tuple[int, dict]] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.logged.append((step, metrics))


def test_grad_norm_after_a_skipped_step_is_logged_at_its_own_optimizer_step_regression():
    """Norms were logged at step * steps_per_rollout + k with k counting kept steps only, so after a skip
    every later norm landed one optimizer step early."""
    engine = FakeEngine([2.0, float("inf"), 3.0, 4.0])
    result = update(engine, _batch(8), build_regularizer("none"), _settings(zero_stage=2), PAD, step=0)
    assert result.grad_norms == [2.0, None, 3.0, 4.0]
    tracker = Tracker()
    log_grad_norms(tracker, 5, result.grad_norms)  # rollout step 5 of 4 optimizer steps each: 20..23
    assert tracker.logged == [(20, {"grad_norm_per_update": 2.0}), (22, {"grad_norm_per_update": 3.0}),
                              (23, {"grad_norm_per_update": 4.0})]
