"""Rollout engines: one interface (`generate(prompts, SamplingConfig) -> [[Completion]]`,
`sync_weights(state_dict)`, `close()`), two backends (vLLM and the HF reference).

`backend: auto` picks vLLM on CUDA and HF on CPU (where HF is as fast for tiny models)."""
from __future__ import annotations

import torch

from pipeline.rollout.hf import HFEngine
from pipeline.rollout.types import Completion, SamplingConfig, sample_seed


def resolve_backend(backend: str) -> str:
    if backend == "auto":
        return "vllm" if torch.cuda.is_available() else "hf"
    if backend not in ("hf", "vllm"):
        raise ValueError(f"unknown rollout backend {backend!r}; use auto, hf or vllm")
    return backend


def make_engine(backend: str, *, model=None, tokenizer=None, model_path: str | None = None, dtype: str = "float32",
                seed: int = 0, batch_size: int = 64, kv_cache_gb: float = 1.0, gpu_memory_utilization: float = 0.5,
                tensor_parallel_size: int = 1, enforce_eager: bool = True):
    """An engine for `backend`; HF needs the in-memory model and tokenizer, vLLM a saved model path."""
    backend = resolve_backend(backend)
    if backend == "hf":
        if model is None or tokenizer is None:
            raise ValueError("the hf backend needs model and tokenizer objects")
        return HFEngine(model, tokenizer, batch_size=batch_size)
    from pipeline.rollout.vllm_engine import VLLMEngine

    if model_path is None:
        raise ValueError("the vllm backend needs model_path (a saved model directory or hub id)")
    return VLLMEngine(model_path, dtype=dtype, seed=seed, kv_cache_gb=kv_cache_gb,
                      gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                      enforce_eager=enforce_eager)


def engine_from_params(params, model, tokenizer, model_path: str | None = None):
    """The rollout engine that `params.rollout` selects, for an in-memory model (HF) or a saved one (vLLM)."""
    r = params.rollout
    return make_engine(r.backend, model=model, tokenizer=tokenizer, model_path=model_path or params.model.name_or_path,
                       dtype=params.model.dtype, seed=params.seed, batch_size=r.batch_size, kv_cache_gb=r.kv_cache_gb,
                       gpu_memory_utilization=r.gpu_memory_utilization, tensor_parallel_size=r.tensor_parallel_size,
                       enforce_eager=r.enforce_eager)


__all__ = ["Completion", "SamplingConfig", "HFEngine", "engine_from_params", "make_engine", "resolve_backend",
           "sample_seed"]
