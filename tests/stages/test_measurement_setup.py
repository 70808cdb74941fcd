"""Difficulty, entropy and evaluate resolve their device and backend before loading anything: CUDA when
available, vLLM where installed (HF model loaded only when something needs it), HF otherwise."""
from __future__ import annotations

import types

import pytest
import torch

from pipeline.config import ConfigError, load_params
from pipeline.models import loading
from pipeline.stages.common import measurement_setup


@pytest.fixture
def gpu_with_vllm(monkeypatch):
    """CUDA and vLLM 'present': the loader and the engine factory are recorded instead of run."""
    calls = {"load_policy": [], "make_engine": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("pipeline.rollout.vllm_installed", lambda: True)
    cuda_param = types.SimpleNamespace(is_cuda=True)
    model = types.SimpleNamespace(parameters=lambda: iter([cuda_param]))

    def fake_load_policy(path, dtype, *, device, attn_implementation=None):
        calls["load_policy"].append((path, dtype, device))
        return model, loading.load_tokenizer(path)

    monkeypatch.setattr(loading, "load_policy", fake_load_policy)
    monkeypatch.setattr("pipeline.rollout.make_engine",
                        lambda backend, **kw: calls["make_engine"].append((backend, kw)) or types.SimpleNamespace())
    return calls


def _params(tiny_params_file, tiny_model_dir, **kw):
    return load_params(tiny_params_file(**{"model.name_or_path": str(tiny_model_dir), "model.stop_tokens": ["<|im_end|>"],
                                           "rollout.sleep_mode": True, **kw}))


def test_vllm_sampling_stages_load_only_the_tokenizer(tiny_params_file, tiny_model_dir, gpu_with_vllm):
    engine, model, tok, backend = measurement_setup(_params(tiny_params_file, tiny_model_dir), need_model=False)
    assert backend == "vllm" and model is None and gpu_with_vllm["load_policy"] == []
    (b, kw), = gpu_with_vllm["make_engine"]
    assert b == "auto" and kw["device"] == torch.device("cuda", 0) and kw["model_path"] == str(tiny_model_dir)
    assert kw["stop_ids"] == [tok.convert_tokens_to_ids("<|im_end|>")]
    assert kw["sleep_mode"] is False  # nothing else on the GPU: no reason to sleep


def test_entropy_stage_loads_the_model_on_cuda_and_vllm_sleeps_beside_it(tiny_params_file, tiny_model_dir,
                                                                        gpu_with_vllm):
    _, model, _, backend = measurement_setup(_params(tiny_params_file, tiny_model_dir), need_model=True)
    assert backend == "vllm" and model is not None
    assert gpu_with_vllm["load_policy"] == [(str(tiny_model_dir), "float32", torch.device("cuda", 0))]
    assert gpu_with_vllm["make_engine"][0][1]["sleep_mode"] is True


def test_cpu_runs_the_hf_backend_on_the_cpu(tiny_params_file, tiny_model_dir):
    engine, model, tok, backend = measurement_setup(_params(tiny_params_file, tiny_model_dir), need_model=False)
    assert backend == "hf" and engine.backend == "hf" and next(model.parameters()).device.type == "cpu"
    assert engine.stop_ids == [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")]


def test_cuda_requested_without_a_gpu_fails_before_loading(tiny_params_file, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loading, "load_policy", lambda *a, **k: pytest.fail("loaded a model"))
    with pytest.raises(ConfigError, match="model.device"):
        measurement_setup(_params(tiny_params_file, tiny_model_dir, **{"model.device": "cuda"}), need_model=True)
