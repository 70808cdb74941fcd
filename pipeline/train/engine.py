"""DeepSpeed engine construction: the same `deepspeed.initialize` on every device.

CPU: the `cpu` accelerator over gloo, a torch AdamW (`torch_adam`, so FusedAdam is never JIT-compiled,
~115 s) and `deepspeed_shm_comm` disabled (its first use JIT-compiles a comm op for ~100-120 s).  GPU:
ZeRO-2/3 with bf16 as configured.  Gradient accumulation is unmanaged: the trainer calls `backward` per
micro-batch with a loss already normalised to the global mini-batch and `step()` once per update, which
also lets a non-finite step be skipped without desynchronising DeepSpeed's counters.
"""
from __future__ import annotations

import os

import torch


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
    """-> DeepSpeed engine wrapping `model`."""
    deepspeed = import_deepspeed()
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=[p for p in model.parameters()
                                                                           if p.requires_grad], config=config)
    return engine


def full_state_dict(engine, zero_stage: int) -> dict:
    """The full state dict on every rank.  ZeRO <= 2 keeps whole parameters on each rank (only optimizer
    state and gradients are partitioned), so the module's own state dict is already consolidated."""
    del zero_stage  # ZeRO-3 is refused at config validation (see schema.DeepSpeedCfg)
    return engine.module.state_dict()
