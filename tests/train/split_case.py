"""A fixed rollout batch and one optimizer step's gradients, shared by the split-invariance test and its
two-rank script (tests/train/split_ranks.py)."""
from __future__ import annotations

import torch

from pipeline.rl.advantages import grpo_advantages
from pipeline.rl.registry import build_regularizer, method_class
from pipeline.train.batch import RolloutBatch
from pipeline.train.update import UpdateSettings, accumulate, rollout_pass

PROMPTS, GROUP = 4, 8
ANCHORS = {"h0": 1.0, "siren_anchor": 0.1, "aent_clamped_entropy": 1.0}
# config fields that make a mechanism act strongly on the tiny batch; a method not listed runs with its
# config defaults, so every registered method is covered without editing this file
STRESS = {
    "fixed": {"beta": 0.05},
    "aer": {"alpha_init": 0.05, "lr": 0.1, "alpha_max": 0.1},
    "aent": {"lambda_init": 0.005, "warmup_steps": 0},
    "siren": {"beta": 0.5, "top_k": 50, "rho": 0.5},
    "skywork": {"target": 50.0, "coef_init": 0.01, "coef_max": 0.05},
    "clip_cov": {"clip_ratio": 0.05, "clip_lb": 0.0, "clip_ub": 100.0},
    "kl_cov": {"kl_ratio": 0.05},
}


def make_method(name: str):
    """The registered method `name` from its config dataclass (defaults + STRESS) and fixed anchors."""
    cls = method_class(name)
    cfg = cls.Config(**STRESS.get(name, {})) if cls.Config is not None else None
    return cls.from_config(cfg, ANCHORS, seed=7)


def make_batch(model, tokenizer, seed: int = 0) -> tuple[RolloutBatch, list[torch.Tensor]]:
    """4 prompts x 8 sampled responses with random rewards, and perturbed old log-probs (ratio != 1)."""
    from pipeline.data import synthetic
    from pipeline.rollout import HFEngine, SamplingConfig

    problems = synthetic.generate(seed, "split", [1, 2], 2)
    prompts = [f"Q: {p.problem}\nA:" for p in problems]
    completions = HFEngine(model, tokenizer).generate(prompts, SamplingConfig(GROUP, 1.0, 1.0, 12, seed))
    g = torch.Generator().manual_seed(seed)
    rewards = (torch.rand(PROMPTS * GROUP, generator=g) > 0.5).float()
    enc = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in prompts]
    batch = RolloutBatch(
        prompt_ids=[enc[i] for i in range(PROMPTS) for _ in range(GROUP)],
        response_ids=[list(c.token_ids) for row in completions for c in row], rewards=rewards,
        advantages=grpo_advantages(rewards, GROUP), pass_rates=torch.tensor([0.0, 0.25, 0.5, 1.0]).repeat_interleave(GROUP),
        problem_ids=[p.id for p in problems for _ in range(GROUP)], buckets=["b"] * (PROMPTS * GROUP),
        truncated=[False] * (PROMPTS * GROUP), statuses=["ok"] * (PROMPTS * GROUP))
    olds, _, _ = rollout_pass(model, batch, build_regularizer("none"), settings(32, 1), tokenizer.pad_token_id)
    olds = [o + 0.3 * torch.randn(o.shape, generator=g) for o in olds]
    return batch, olds


def settings(micro: int, world: int) -> UpdateSettings:
    return UpdateSettings(micro_batch_size=micro, mini_batch_size=PROMPTS * GROUP // world, updates_per_batch=1,
                          clip_low=0.2, clip_high=0.28, agg_mode="token-mean", max_len=12, temperature=1.0,
                          chunk_size=64, world_size=world, zero_stage=0)


def step_gradients(model, batch, olds, name: str, micro: int, world: int, comm, pad_id: int,
                   agg_mode: str = "token-mean") -> tuple[float, dict[str, torch.Tensor]]:
    """The global loss and this rank's (not yet averaged) gradients of one optimizer step."""
    model.zero_grad(set_to_none=True)
    reg = make_method(name)
    s = settings(micro, world)
    s.agg_mode = agg_mode
    out = accumulate(model, lambda loss: loss.backward(), batch, olds, reg, s, pad_id, comm)
    return out.loss, {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
