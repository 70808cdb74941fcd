"""DeepSpeed engine construction: the same `deepspeed.initialize` on every device.

CPU: the `cpu` accelerator over gloo, a torch AdamW (`torch_adam`, so FusedAdam is never JIT-compiled,
~115 s) and `deepspeed_shm_comm` disabled (its first use JIT-compiles a comm op for ~100-120 s).  GPU:
ZeRO-2/3 with bf16 as configured.  The engine wraps a `PolicyScorer` (see `pipeline.models.forward`);
`policy(engine)` is the causal LM inside it.  Gradient accumulation is unmanaged: the trainer calls
`backward` per micro-batch with a loss already normalised to the global mini-batch and `step()` once per
update, which also lets a non-finite step be skipped without desynchronising DeepSpeed's counters.
"""
from __future__ import annotations

import os

import torch

from pipeline.models.forward import PolicyScorer


def deepspeed_config(*, micro_batch_size: int, world_size: int, lr: float, weight_decay: float, zero_stage: int,
                     bf16: bool, gradient_clipping: float) -> dict:
    return {
        "train_micro_batch_size_per_gpu": micro_batch_size, "gradient_accumulation_steps": 1,
        "train_batch_size": micro_batch_size * world_size, "managed_gradient_accumulation": False,
        "gradient_clipping": gradient_clipping, "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": bf16},
        "optimizer": {"type": "AdamW", "params": {"lr": lr, "weight_decay": weight_decay, "betas": [0.9, 0.999],
                                                  "eps": 1e-8, "torch_adam": True}},
        "zero_allow_untested_optimizer": True, "steps_per_print": 10**9, "wall_clock_breakdown": False,
    }


def import_deepspeed():
    """Import DeepSpeed with the CPU accelerator when there is no GPU and the shm comm op disabled
    (must happen before `init_distributed`, or its first call JIT-compiles the op for ~100 s)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    return deepspeed


def initialize(model, config: dict):
    """-> DeepSpeed engine wrapping `PolicyScorer(model)`."""
    deepspeed = import_deepspeed()
    scorer = PolicyScorer(model)
    if config["zero_optimization"]["stage"] == 3:
        # the fused head reads this weight outside lm_head.forward: have ZeRO-3 gather it for the scorer
        deepspeed.zero.register_external_parameter(scorer, model.get_output_embeddings().weight)
    engine, _, _, _ = deepspeed.initialize(model=scorer, model_parameters=[p for p in scorer.parameters()
                                                                            if p.requires_grad], config=config)
    return engine


def policy(engine) -> torch.nn.Module:
    """The causal LM trained by `engine` (for generation and export)."""
    return engine.module.policy


def full_state_dict(engine, zero_stage: int) -> dict:
    """The policy's full state dict, on every rank (collective under ZeRO-3).

    ZeRO <= 2 keeps whole parameters on each rank, so the module's own state dict is already whole.
    ZeRO-3 partitions them: gather one module's parameters at a time (bounded memory) and copy them to the
    CPU.  Every rank gets the result, since each feeds its own rollout engine.  Tied weights stay tied.
    """
    model = policy(engine)
    if zero_stage < 3:
        return model.state_dict()
    GatheredParameters = import_deepspeed().zero.GatheredParameters

    out, seen = {}, {}
    for prefix, module in model.named_modules():
        named = list(module.named_parameters(prefix=prefix, recurse=False, remove_duplicate=False))
        with GatheredParameters([p for _, p in named], modifier_rank=None):
            for name, p in named:
                if id(p) not in seen:
                    seen[id(p)] = p.detach().to("cpu", copy=True)
                out[name] = seen[id(p)]
        for name, buf in module.named_buffers(prefix=prefix, recurse=False):
            if name.rsplit(".", 1)[-1] not in module._non_persistent_buffers_set:
                out[name] = buf.detach().to("cpu", copy=True)
    return out
