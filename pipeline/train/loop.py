"""The on-policy GRPO training loop: rollout -> reward -> advantage -> loss -> controller -> sync -> log.

`train(ctx)` is the whole loop on one page; each phase is a named helper.  Rollout seeds derive from
(seed, step, rank), the data cursor and every stateful object are checkpointed, so a resumed run
repeats the uninterrupted one exactly on CPU.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from pipeline.data.prompts import format_prompt
from pipeline.rewards import score_batch
from pipeline.rl.advantages import grpo_advantages
from pipeline.rl.regularizers import AER, Regularizer
from pipeline.rollout.types import SamplingConfig
from pipeline.train import checkpoint
from pipeline.train.batch import PromptSampler, RolloutBatch, shard
from pipeline.train.distributed import is_main
from pipeline.train.engine import full_state_dict
from pipeline.train.telemetry import StepLog, step_metrics
from pipeline.train.update import UpdateSettings, update
from pipeline.utils.seeding import derive_seed


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
    start_step: int = 0
    ckpt_dir: str = "models/trained/checkpoints"
    samples_path: Optional[str] = None
    skipped_steps: int = 0
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
    bar = tqdm(range(ctx.start_step, p.steps), initial=ctx.start_step, total=p.steps, disable=not is_main(),
               desc=f"train[{p.method}]", dynamic_ncols=True)
    for step in bar:
        timer = Timer()
        problems = shard(ctx.sampler.next(p.prompts_per_step), ctx.rank, ctx.world)
        with timer("rollout"):
            prompts, completions = rollout(ctx, problems, step)
        with timer("reward"):
            batch = score(ctx, problems, prompts, completions)
        with timer("update"):
            result = update(ctx.engine, batch, ctx.reg, ctx.settings, ctx.tokenizer.pad_token_id)
        reg_metrics = ctx.reg.update(result.stat, step)
        with timer("sync"):
            sync(ctx)
        ctx.skipped_steps += result.skipped
        ctx.last = log_step(ctx, step, batch, result, reg_metrics, timer, completions)
        bar.set_postfix(reward=f"{ctx.last['reward_mean']:.3f}", entropy=f"{ctx.last.get('entropy', float('nan')):.4f}",
                        alpha=f"{ctx.last.get('reg/coef', 0.0):.4g}")
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
    if isinstance(ctx.reg, AER):
        ctx.reg.observe(ids, rewards.view(-1, g).mean(1).tolist())
        base = ctx.reg.blended_pass_rates(ids, torch.tensor([ctx.rates[i][0] for i in ids]))
    else:
        base = torch.tensor([ctx.rates[i][0] for i in ids])
    enc = [ctx.tokenizer(t, add_special_tokens=False)["input_ids"] for t in prompts]
    return RolloutBatch(
        prompt_ids=[enc[i] for i in range(len(problems)) for _ in range(g)],
        response_ids=[list(c.token_ids) for c in flat],
        rewards=rewards, advantages=grpo_advantages(rewards, g, scale_by_std=ctx.params.train.scale_by_std),
        pass_rates=base.repeat_interleave(g), problem_ids=[i for i in ids for _ in range(g)],
        buckets=[ctx.rates[i][1] for i in ids for _ in range(g)],
        truncated=[c.finish_reason == "length" for c in flat], statuses=[r.status for r in results])


def sync(ctx: TrainContext) -> None:
    """Push the updated weights into a separate rollout engine (HF rollouts share the trained module)."""
    if ctx.rollout.backend != "hf":
        ctx.rollout.sync_weights(full_state_dict(ctx.engine, ctx.settings.zero_stage))


def log_step(ctx, step, batch, result, reg_metrics, timer, completions) -> dict:
    row = {"step": step, **step_metrics(batch, result.token_entropy), **result.metrics, **reg_metrics, **timer,
           "skipped_steps": ctx.skipped_steps}
    n_tokens = sum(len(r) for r in batch.response_ids)
    row["tokens_per_s"] = n_tokens / max(sum(v for k, v in timer.items()), 1e-9)
    if is_main():
        ctx.log.append(row)
        ctx.tracker.log_metrics({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=step)
        if ctx.samples_path:
            _append_samples(ctx.samples_path, step, batch, completions)
    return row


def _append_samples(path: str, step: int, batch: RolloutBatch, completions, k: int = 4) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for i, c in enumerate([c for row in completions for c in row][:k]):
            fh.write(json.dumps({"step": step, "problem_id": batch.problem_ids[i], "reward": float(batch.rewards[i]),
                                 "status": batch.statuses[i], "completion": c.text}) + "\n")


def trainer_state(ctx: TrainContext, step: int) -> dict:
    return {"step": step, "cursor": ctx.sampler.cursor, "regularizer": ctx.reg.state_dict(),
            "skipped_steps": ctx.skipped_steps, "fingerprint": ctx.fingerprint}
