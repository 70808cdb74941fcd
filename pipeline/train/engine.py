"""DeepSpeed engine construction: the same `deepspeed.initialize` on every device.

CPU: the `cpu` accelerator over gloo, a torch AdamW (`torch_adam`, so FusedAdam is never JIT-compiled,
~115 s) and `deepspeed_shm_comm` disabled (its first use JIT-compiles a comm op for ~100-120 s).  GPU:
ZeRO-2/3 with bf16 as configured.  The engine wraps a `PolicyScorer` (see `pipeline.models.forward`);
`policy(engine)` is the causal LM inside it.  Gradient accumulation is unmanaged: the trainer calls
`backward` per micro-batch with a loss already normalised to the global mini-batch and `step()` once per
update, which also lets a non-finite step be skipped without desynchronising DeepSpeed's counters.

Users configure DeepSpeed as with HF's integration: `train.deepspeed.config_file` names a JSON config
merged over the generated one (`merge_user_config`: user keys win, "auto" takes the generated value; the
keys the trainer's own accounting depends on must be "auto" or agree).  `offload_optimizer` keeps
optimizer states in host memory; `gradient_checkpointing` recomputes decoder activations in backward.
Under ZeRO-3 `build` creates the policy inside `deepspeed.zero.Init` (each parameter partitioned as it is
created) and copies the safetensors checkpoint in one tensor at a time: rank 0 reads it, and
`GatheredParameters(modifier_rank=0)` hands each rank its partition.  So no rank holds the whole model
while loading, on the device or in host memory; the host peak is one tensor (the 151,936 x 1,536 embedding,
0.47 GB in bf16, for Qwen2.5-1.5B).  (transformers' own route, `HfDeepSpeedConfig`, needs accelerate,
which the pipeline does not install, and reads the checkpoint on every rank.)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from pipeline.config import ConfigError
from pipeline.models.forward import PolicyScorer

# The trainer's accounting (unmanaged accumulation, per-rank micro-batches, the export path chosen by
# ZeRO stage) depends on these: a user config may leave them "auto" or repeat our value, not change them.
OWNED_KEYS = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size",
              "managed_gradient_accumulation", "zero_optimization.stage")


def deepspeed_config(*, micro_batch_size: int, world_size: int, lr: float, weight_decay: float, zero_stage: int,
                     bf16: bool, gradient_clipping: float, offload_optimizer: bool = False) -> dict:
    zero: dict = {"stage": zero_stage}
    if offload_optimizer:  # torch AdamW steps the offloaded states (DeepSpeedCPUAdam needs a C++ build first)
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    return {
        "train_micro_batch_size_per_gpu": micro_batch_size, "gradient_accumulation_steps": 1,
        "train_batch_size": micro_batch_size * world_size, "managed_gradient_accumulation": False,
        "gradient_clipping": gradient_clipping, "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "optimizer": {"type": "AdamW", "params": {"lr": lr, "weight_decay": weight_decay, "betas": [0.9, 0.999],
                                                  "eps": 1e-8, "torch_adam": True}},
        "zero_allow_untested_optimizer": True, "steps_per_print": 10**9, "wall_clock_breakdown": False,
    }


def merge_user_config(ours: dict, user: dict, source: str = "ds_config", _prefix: str = "") -> dict:
    """`user` over `ours`, recursively: user values win, "auto" takes ours (an "auto" with no value of
    ours is an error naming the key), keys in OWNED_KEYS must be "auto" or equal ours."""
    out = dict(ours)
    for key, value in user.items():
        path = f"{_prefix}{key}"
        mine = ours.get(key)
        if isinstance(value, dict):  # a section: merged key by key (with nothing of ours, "auto" is an error)
            out[key] = merge_user_config(mine if isinstance(mine, dict) else {}, value, source, f"{path}.")
        elif value == "auto":
            if key not in ours:
                raise ConfigError(f"{source}: key '{path}' = 'auto': the pipeline has no value to fill in. "
                                  "Fix: give a value or remove the key")
            out[key] = mine
        elif path in OWNED_KEYS and value != mine:
            raise ConfigError(f"{source}: key '{path}' = {value!r} conflicts with the trainer's {mine!r}. Fix: set "
                              "it to \"auto\" (or remove it) and change the matching train.* param instead")
        else:
            out[key] = value
    return out


def config_from_params(train_cfg, world_size: int) -> dict:
    """The DeepSpeed config for `params.train` (a TrainCfg): generated, then the user's file merged over it."""
    ds = train_cfg.deepspeed
    ours = deepspeed_config(micro_batch_size=train_cfg.micro_batch_size, world_size=world_size, lr=train_cfg.lr,
                            weight_decay=train_cfg.weight_decay, zero_stage=ds.zero_stage, bf16=ds.bf16,
                            gradient_clipping=ds.gradient_clipping, offload_optimizer=ds.offload_optimizer)
    if ds.config_file is None:
        return ours
    with open(ds.config_file, encoding="utf-8") as fh:
        return merge_user_config(ours, json.load(fh), ds.config_file)


def import_deepspeed():
    """Import DeepSpeed with the CPU accelerator when there is no GPU and the shm comm op disabled
    (must happen before `init_distributed`, or its first call JIT-compiles the op for ~100 s)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    return deepspeed


def initialize(model, config: dict, *, gradient_checkpointing: bool = False):
    """-> DeepSpeed engine wrapping `PolicyScorer(model)`."""
    deepspeed = import_deepspeed()
    if gradient_checkpointing:
        # non-reentrant checkpointing: correct with inputs that do not require grad, and under ZeRO-3
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    scorer = PolicyScorer(model)
    if config["zero_optimization"]["stage"] == 3:
        # the fused head reads this weight outside lm_head.forward: have ZeRO-3 gather it for the scorer
        deepspeed.zero.register_external_parameter(scorer, model.get_output_embeddings().weight)
    engine, _, _, _ = deepspeed.initialize(model=scorer, model_parameters=[p for p in scorer.parameters()
                                                                            if p.requires_grad], config=config)
    return engine


def load_partitioned(model_path: str, dtype: str, config: dict, attn_implementation: str | None = None):
    """ZeRO-3: the causal LM at `model_path` built inside zero.Init, its safetensors weights copied in one
    tensor at a time from rank 0 (see module doc).  Safetensors only: a checkpoint never runs code."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    from pipeline.models.loading import DTYPES

    deepspeed = import_deepspeed()
    files = sorted(Path(model_path).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_path}: no *.safetensors files (ZeRO-3 loading reads safetensors only)")
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    # no_init_weights: random init of empty partitions is wasted work (and HF's padding-row init fails on them)
    with no_init_weights(), deepspeed.zero.Init(config_dict_or_path=config, dtype=DTYPES[dtype]):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path), dtype=DTYPES[dtype], **kwargs)
    model.tie_weights()  # no_init_weights skipped it with the rest of init_weights
    params = dict(model.named_parameters())  # a tied weight appears once
    loaded = set()
    for path in files:
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():
                param = params.get(key)
                if param is None:
                    try:  # e.g. lm_head.weight stored although tied to the embedding
                        param = model.get_parameter(key)
                    except AttributeError:
                        raise ValueError(f"{path}: tensor '{key}' matches no parameter of the model") from None
                with deepspeed.zero.GatheredParameters([param], modifier_rank=0):
                    if torch.distributed.get_rank() == 0:
                        param.data.copy_(fh.get_tensor(key))
                loaded.add(id(param))
    missing = [n for n, p in params.items() if id(p) not in loaded]
    if missing:
        raise ValueError(f"{model_path}: the checkpoint has no values for {missing[:5]} ({len(missing)} in all)")
    return model.eval()


def build(train_cfg, model_path: str, dtype: str, world_size: int, attn_implementation: str | None = None):
    """-> (DeepSpeed engine, tokenizer) for `params.train`: config (user file merged), the policy loaded
    (inside zero.Init under ZeRO-3), gradient checkpointing as configured.  Call after `distributed.init`."""
    from pipeline.models.loading import load_policy, load_tokenizer

    config = config_from_params(train_cfg, world_size)
    if config["zero_optimization"]["stage"] == 3:
        model, tokenizer = load_partitioned(model_path, dtype, config, attn_implementation), load_tokenizer(model_path)
    else:
        model, tokenizer = load_policy(model_path, dtype, attn_implementation=attn_implementation)
    engine = initialize(model, config, gradient_checkpointing=train_cfg.deepspeed.gradient_checkpointing)
    return engine, tokenizer


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
