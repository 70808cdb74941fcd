"""The on-policy GRPO training loop: rollout -> reward -> advantage -> update -> sync -> log.

`train(ctx)` is the whole loop on one page; each phase is a named helper.  Rollout seeds derive from
(seed, step, rank), the data cursor and every stateful object are checkpointed, so a resumed run
repeats the uninterrupted one exactly on CPU.  A step whose update saw a non-finite loss or gradient is
skipped (counted once); `train.max_consecutive_skips` such steps in a row stop the run.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from pipeline.data.prompts import format_prompt
from pipeline.rewards import score_batch
from pipeline.rl.advantages import grpo_advantages
from pipeline.rl.methods.base import Regularizer
from pipeline.rollout.types import SamplingConfig
from pipeline.train import checkpoint
from pipeline.train.batch import PromptSampler, RolloutBatch, shard
from pipeline.train.distributed import all_gather_lists, is_main
from pipeline.train.engine import full_state_dict
from pipeline.train.telemetry import StepLog, step_metrics
from pipeline.train.update import UpdateSettings, update
from pipeline.utils.io import atomic_open
from pipeline.utils.progress import progress
from pipeline.utils.seeding import derive_seed


class TrainingAborted(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


@dataclass
class TrainContext:
    params: Any                  # the frozen Params (train, model, seed sections are read)
    engine: Any                  # DeepSpeed engine
    rollout: Any                 # rollout engine (HF on the trained module, or vLLM synced each step)
    tokenizer: Any
    sampler: PromptSampler
    rates: dict                  # problem id -> (pass rate, bucket)
    reg: Regularizer
    settings: UpdateSettings
    log: StepLog
    tracker: Any
    rank: int = 0
    world: int = 1
    n_minibatches: int = 1       # global mini-batches per pass over a rollout batch
    start_step: int = 0
    ckpt_dir: str = "models/trained/checkpoints"
    samples_path: Optional[str] = None
    skipped_steps: int = 0       # rollout steps with at least one skipped optimizer step
    skipped_updates: int = 0     # optimizer steps skipped
    consecutive_skips: int = 0
    fingerprint: str = ""
    last: dict = field(default_factory=dict)


class Timer(dict):
    @contextlib.contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        yield
        self[f"time/{phase}"] = time.perf_counter() - start


def train(ctx: TrainContext) -> dict:
    """Run steps [start_step, train.steps); returns the last step's metrics."""
    p = ctx.params.train
    bar = progress(range(ctx.start_step, p.steps), initial=ctx.start_step, total=p.steps, desc=f"train[{p.method}]",
                   unit="step", disable=not is_main())
    for step in bar:
        timer = Timer()
        problems = shard(ctx.sampler.next(p.prompts_per_step), ctx.rank, ctx.world, ctx.n_minibatches)
        with timer("rollout"):
            prompts, completions = rollout(ctx, problems, step)
        with timer("reward"):
            batch = score(ctx, problems, prompts, completions)
        with timer("update"):
            result = update(ctx.engine, batch, ctx.reg, ctx.settings, ctx.tokenizer.pad_token_id, step)
        with timer("sync"):
            sync(ctx)
        count_skips(ctx, step, result.skipped)
        ctx.last = log_step(ctx, step, batch, result, timer, completions)
        bar.set_postfix(reward=f"{ctx.last['reward_mean']:.3f}", entropy=f"{ctx.last.get('entropy', float('nan')):.4f}",
                        coef=f"{ctx.last.get('reg/coef', 0.0):.4g}")
        if (step + 1) % p.checkpoint_every == 0 or step + 1 == p.steps:
            checkpoint.save(ctx.engine, ctx.ckpt_dir, step + 1, trainer_state(ctx, step + 1))
    return ctx.last


def rollout(ctx: TrainContext, problems, step: int):
    p, m = ctx.params.train, ctx.params.model
    prompts = [format_prompt(x.problem, m.prompt_template, ctx.tokenizer, m.use_chat_template) for x in problems]
    cfg = SamplingConfig(p.group_size, p.temperature, p.top_p, p.max_new_tokens,
                         derive_seed(ctx.params.seed, "train-rollout", step, ctx.rank))
    return prompts, ctx.rollout.generate(prompts, cfg)


def score(ctx: TrainContext, problems, prompts, completions) -> RolloutBatch:
    """Rewards, group advantages and per-sample difficulty for this rank's shard."""
    g = ctx.params.train.group_size
    flat = [c for row in completions for c in row]
    results = score_batch([c.text for c in flat], [x.answer for x in problems for _ in range(g)])
    rewards = torch.tensor([r.score for r in results], dtype=torch.float32)
    ids = [x.id for x in problems]
    # every rank's group accuracies, so per-prompt method state is identical on every rank
    everyone = all_gather_lists(list(zip(ids, rewards.view(-1, g).mean(1).tolist())))
    ctx.reg.observe([i for part in everyone for i, _ in part], [a for part in everyone for _, a in part])
    rates = ctx.reg.difficulty(ids, torch.tensor([ctx.rates[i][0] for i in ids]))
    enc = [ctx.tokenizer(t, add_special_tokens=False)["input_ids"] for t in prompts]
    return RolloutBatch(
        prompt_ids=[enc[i] for i in range(len(problems)) for _ in range(g)],
        response_ids=[list(c.token_ids) for c in flat],
        rewards=rewards, advantages=grpo_advantages(rewards, g, scale_by_std=ctx.params.train.scale_by_std),
        pass_rates=rates.repeat_interleave(g), problem_ids=[i for i in ids for _ in range(g)],
        buckets=[ctx.rates[i][1] for i in ids for _ in range(g)],
        truncated=[c.finish_reason == "length" for c in flat], statuses=[r.status for r in results])


def sync(ctx: TrainContext) -> None:
    """Push the updated weights into a separate rollout engine (HF rollouts share the trained module)."""
    if ctx.rollout.backend != "hf":
        ctx.rollout.sync_weights(full_state_dict(ctx.engine, ctx.settings.zero_stage))


def count_skips(ctx: TrainContext, step: int, skipped: int) -> None:
    """A step with any skipped optimizer step counts once; too many in a row stop the run."""
    ctx.skipped_updates += skipped
    ctx.skipped_steps += int(skipped > 0)
    ctx.consecutive_skips = ctx.consecutive_skips + 1 if skipped else 0
    limit = ctx.params.train.max_consecutive_skips
    if ctx.consecutive_skips >= limit:
        raise TrainingAborted(f"{ctx.consecutive_skips} consecutive training steps (up to step {step}) had a "
                              f"non-finite loss or gradient and were skipped (train.max_consecutive_skips = {limit}); "
                              "stopping. Check the learning rate and the data; the last checkpoint holds only "
                              "finite weights")


def log_step(ctx, step, batch, result, timer, completions) -> dict:
    """Metrics over every rank's samples, logged by rank 0; non-finite values are never written."""
    shards = all_gather_lists([{"rewards": batch.rewards.tolist(), "buckets": batch.buckets,
                                "lengths": [len(r) for r in batch.response_ids], "truncated": batch.truncated,
                                "token_entropy": result.token_entropy, "sample_values": result.sample_values}])
    row = {"step": step, **step_metrics([s[0] for s in shards]), **result.reg_metrics, **result.metrics, **timer,
           "skipped_steps": ctx.skipped_steps, "skipped_updates": ctx.skipped_updates}
    n_tokens = sum(sum(s[0]["lengths"]) for s in shards)
    row["tokens_per_s"] = n_tokens / max(sum(v for k, v in timer.items()), 1e-9)
    row = {k: v for k, v in row.items() if not (isinstance(v, float) and not math.isfinite(v))}
    if is_main():
        ctx.log.append(row)
        ctx.tracker.log_metrics({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=step)
        log_grad_norms(ctx.tracker, step, result.grad_norms)
        if ctx.samples_path:
            _append_samples(ctx.samples_path, step, batch, completions)
    return row


def log_grad_norms(tracker, step: int, norms: list) -> None:
    """Each optimizer step's grad norm at its own index on the optimizer-step axis (rollout step x optimizer
    steps per rollout + k); a skipped step (None) leaves its slot empty rather than shifting later norms."""
    for k, norm in enumerate(norms):
        if norm is not None:
            tracker.log_metrics({"grad_norm_per_update": norm}, step=step * len(norms) + k)


def _append_samples(path: str, step: int, batch: RolloutBatch, completions, k: int = 4) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for i, c in enumerate([c for row in completions for c in row][:k]):
            fh.write(json.dumps({"step": step, "problem_id": batch.problem_ids[i], "reward": float(batch.rewards[i]),
                                 "status": batch.statuses[i], "completion": c.text}) + "\n")


def truncate_samples(path: str, step: int) -> None:
    """Keep the sample rows of steps before `step` (a resumed run replays the later ones)."""
    if not Path(path).is_file():
        return
    with open(path, encoding="utf-8") as fh:
        keep = [line for line in fh if line.strip() and json.loads(line)["step"] < step]
    with atomic_open(path) as fh:
        fh.writelines(keep)


def trainer_state(ctx: TrainContext, step: int) -> dict:
    state = {"step": step, "cursor": ctx.sampler.cursor, "regularizer": ctx.reg.state_dict(),
             "skipped_steps": ctx.skipped_steps, "skipped_updates": ctx.skipped_updates,
             "consecutive_skips": ctx.consecutive_skips, "fingerprint": ctx.fingerprint}
    bad = nonfinite_keys(state)
    if bad:  # controllers refuse non-finite statistics, so this is a bug, never a state to resume from
        raise RuntimeError(f"refusing to checkpoint non-finite trainer state at {', '.join(bad)}")
    return state


def nonfinite_keys(obj, prefix: str = "") -> list[str]:
    """Dotted paths of non-finite floats in a nested dict/list state."""
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [prefix or "<root>"]
    if isinstance(obj, dict):
        return [k for key, v in obj.items() for k in nonfinite_keys(v, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(obj, (list, tuple)):
        return [k for i, v in enumerate(obj) for k in nonfinite_keys(v, f"{prefix}[{i}]")]
    return []
