"""Rollout engines: one interface (`generate(prompts, SamplingConfig) -> [[Completion]]`,
`sync_weights(state_dict)`, `close()`), two backends (vLLM and the HF reference).

`backend: auto` picks vLLM on CUDA when vLLM is installed and HF otherwise (on CPU HF is as fast for tiny
models; the lent GPU machines have no vLLM).  An explicit `vllm` without vLLM installed is a config error.
Both backends stop a response at EOS or any of `stop_ids` (e.g. the chat template's <|im_end|>)."""
from __future__ import annotations

import importlib.util
from typing import Sequence

import torch

from pipeline.config import ConfigError
from pipeline.rollout.hf import HFEngine
from pipeline.rollout.types import Completion, SamplingConfig, sample_seed


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve_backend(backend: str, device: torch.device | str | None = None) -> str:
    """`rollout.backend` -> "hf" or "vllm"; `device` is where the stage runs (default: cuda if available)."""
    if backend not in ("auto", "hf", "vllm"):
        raise ValueError(f"unknown rollout backend {backend!r}; use auto, hf or vllm")
    if backend == "vllm" and not vllm_installed():
        raise ConfigError("params.yaml: key 'rollout.backend' = 'vllm': vLLM is not installed here. Fix: install "
                          "the gpu extra (make install on a CUDA machine) or set rollout.backend: auto")
    if backend == "auto":
        on_cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
        return "vllm" if on_cuda and vllm_installed() else "hf"
    return backend


def make_engine(backend: str, *, model=None, tokenizer=None, model_path: str | None = None, dtype: str = "float32",
                seed: int = 0, batch_size: int = 64, kv_cache_gb: float = 1.0, gpu_memory_utilization: float = 0.5,
                tensor_parallel_size: int = 1, enforce_eager: bool = True, stop_ids: Sequence[int] = (),
                sleep_mode: bool = False, device=None):
    """An engine for `backend`; HF needs the in-memory model and tokenizer, vLLM a saved model path.

    `sleep_mode` (vLLM) sleeps between calls; pass it only when something else shares the GPU."""
    backend = resolve_backend(backend, device)
    if backend == "hf":
        if model is None or tokenizer is None:
            raise ValueError("the hf backend needs model and tokenizer objects")
        return HFEngine(model, tokenizer, batch_size=batch_size, stop_ids=stop_ids)
    from pipeline.rollout.vllm_engine import VLLMEngine

    if model_path is None:
        raise ValueError("the vllm backend needs model_path (a saved model directory or hub id)")
    return VLLMEngine(model_path, dtype=dtype, seed=seed, kv_cache_gb=kv_cache_gb,
                      gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                      enforce_eager=enforce_eager, stop_ids=stop_ids, sleep_mode=sleep_mode)


def engine_from_params(params, model, tokenizer, model_path: str | None = None, device=None):
    """The rollout engine that params.rollout selects, for an in-memory model (HF) or a saved one (vLLM).

    Responses stop at EOS and `model.stop_tokens`.  vLLM sleeps between calls (`rollout.sleep_mode`) only
    when it shares the GPU with `model`, an HF model on a CUDA device (training, H0 measurement)."""
    from pipeline.data.prompts import stop_token_ids

    r = params.rollout
    colocated = model is not None and next(model.parameters()).is_cuda
    return make_engine(r.backend, model=model, tokenizer=tokenizer, model_path=model_path or params.model.name_or_path,
                       dtype=params.model.dtype, seed=params.seed, batch_size=r.batch_size, kv_cache_gb=r.kv_cache_gb,
                       gpu_memory_utilization=r.gpu_memory_utilization, tensor_parallel_size=r.tensor_parallel_size,
                       enforce_eager=r.enforce_eager, stop_ids=stop_token_ids(tokenizer, params.model.stop_tokens),
                       sleep_mode=r.sleep_mode and colocated, device=device)


__all__ = ["Completion", "SamplingConfig", "HFEngine", "engine_from_params", "make_engine", "resolve_backend",
           "sample_seed", "vllm_installed"]
