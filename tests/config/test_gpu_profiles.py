"""The GPU overlays (profiles/gpu.yaml, profiles/gpu-smoke.yaml) and the issue-15 config keys.

An overlay holds only keys that differ from the embedded default; here it is deep-merged over the schema
defaults, validated, and every measuring stage's device and rollout backend are resolved with CUDA
monkeypatched present or absent.
"""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from pipeline.config import ConfigError, Params, params_from_dict, profiles, to_dict
from pipeline.data.benchmarks import BENCHMARKS
from pipeline.models import loading
from pipeline.rollout import resolve_backend
from tests.conftest import ROOT


def overlay(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / f"{name}.yaml").read_text())


def render(name: str, **changes) -> Params:
    """The profile as `make profile` renders it (pipeline.config.profiles), with dotted changes applied."""
    raw = profiles.render(name, ROOT / "profiles")
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return params_from_dict(raw, f"profiles/{name}.yaml")


def _cuda(monkeypatch, available: bool, vllm: bool = False):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr("pipeline.rollout.vllm_installed", lambda: vllm)


@pytest.mark.parametrize("name", ["gpu", "gpu-smoke"])
def test_overlay_validates_and_only_holds_keys_the_schema_knows(name):
    p = render(name)
    assert p.profile == name and p.model.dtype == "bfloat16" and p.train.deepspeed.bf16
    flat_default = to_dict(Params())

    def known(over, base, path=""):
        for k, v in over.items():
            assert k in base, f"{name}: unknown key {path}{k}"
            if isinstance(v, dict) and isinstance(base[k], dict) and f"{path}{k}" not in ("compare.arms",):
                known(v, base[k], f"{path}{k}.")
    known(overlay(name), flat_default)


def test_gpu_smoke_is_offline_random_init_and_short():
    p = render("gpu-smoke")
    assert p.model.build_tiny and p.model.init_config == "qwen2.5-1.5b" and p.hub.model is None
    assert not p.hub.datasets and not p.data.sources and p.data.synthetic.enabled
    assert max(p.difficulty.max_new_tokens, p.train.max_new_tokens, p.eval.max_new_tokens) <= 64
    assert p.train.steps <= 5 and p.train.deepspeed.gradient_checkpointing


@pytest.mark.parametrize("name", ["gpu", "gpu-smoke"])
def test_every_measuring_stage_resolves_cuda_and_its_backend(monkeypatch, name):
    p = render(name)
    _cuda(monkeypatch, True, vllm=False)
    dev = loading.resolve_device(p.model.device)
    assert dev.type == "cuda"
    assert resolve_backend(p.rollout.backend, dev) == "hf"  # the lent GPU machines have no vLLM
    _cuda(monkeypatch, True, vllm=True)
    assert resolve_backend(p.rollout.backend, dev) == "vllm"


def test_smoke_profile_refuses_to_run_without_a_gpu(monkeypatch):
    _cuda(monkeypatch, False)
    with pytest.raises(ConfigError, match="model.device.*no CUDA device.*Fix"):
        loading.resolve_device(render("gpu-smoke").model.device)


def test_gpu_profile_falls_back_to_cpu_and_hf_without_a_gpu(monkeypatch):
    _cuda(monkeypatch, False, vllm=True)
    dev = loading.resolve_device(render("gpu").model.device)
    assert dev.type == "cpu" and resolve_backend("auto", dev) == "hf"


def test_device_index_follows_local_rank(monkeypatch):
    _cuda(monkeypatch, True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert loading.resolve_device("auto") == torch.device("cuda", 3)
    assert loading.resolve_device("cpu") == torch.device("cpu")


def test_explicit_vllm_without_vllm_installed_is_a_config_error(monkeypatch):
    _cuda(monkeypatch, True, vllm=False)
    with pytest.raises(ConfigError, match="rollout.backend.*not installed"):
        resolve_backend("vllm")


def test_gpu_profile_reads_what_the_download_stage_writes():
    p = render("gpu")
    locals_ = {d.local for d in p.hub.datasets}
    assert p.model.name_or_path == p.hub.model.local
    assert {s.path for s in p.data.sources} <= locals_
    assert {b.path for b in p.eval.benchmarks} <= locals_ and {b.path for b in p.data.decontaminate.benchmarks} <= locals_
    # the benchmark copies come from the hub ids and splits the loader knows them by
    by_local = {d.local: d for d in p.hub.datasets}
    for b in p.eval.benchmarks:
        spec = BENCHMARKS[b.name]
        assert (by_local[b.path].repo, by_local[b.path].split) == (spec.hub_id, spec.split)


def test_gpu_prompt_template_does_not_repeat_the_chat_templates_instruction():
    assert "reason step by step" not in render("gpu").model.prompt_template


@pytest.mark.parametrize("changes,key", [
    ({"train.deepspeed.offload_optimizer": True, "train.deepspeed.zero_stage": 0}, "offload_optimizer"),
    ({"train.deepspeed.num_processes": 3}, "num_processes"),
    ({"train.deepspeed.config_file": "no/such/ds.json"}, "config_file"),
    ({"model.init_config": "qwen2.5-1.5b", "model.build_tiny": False}, "init_config"),
    ({"model.init_config": "llama-7b"}, "init_config"),
    ({"model.stop_tokens": [""]}, "stop_tokens"),
    ({"model.device": "tpu"}, "model.device"),
    ({"hub.model": {"repo": "a/b", "local": "elsewhere/b"}}, "hub.model.local"),
    ({"hub.datasets": [{"repo": "a/b", "local": "hub/b.jsonl"}]}, "split"),
])
def test_bad_gpu_path_values_fail_at_load_naming_the_key(changes, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ".*Fix"):
        render("gpu-smoke", **changes)


def test_user_ds_config_must_be_a_json_object(tmp_path):
    bad = tmp_path / "ds.json"
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="config_file.*JSON object"):
        render("gpu-smoke", **{"train.deepspeed.config_file": str(bad)})
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="config_file.*cannot be read"):
        render("gpu-smoke", **{"train.deepspeed.config_file": str(bad)})
