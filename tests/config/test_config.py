"""params.yaml loading: the committed files validate; bad values fail naming key, value and fix."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from pipeline.config import ConfigError, load_params, params_from_dict
from pipeline.config.profiles import render
from tests.conftest import ROOT, tiny_params_dict


def test_committed_params_and_profiles_load():
    default = load_params(ROOT / "params.yaml")
    assert default.profile == "embedded" and default.train.method == "aer"
    gpu = params_from_dict(render("gpu", ROOT / "profiles"))  # profiles are overlays over the schema defaults
    assert gpu.profile == "gpu" and gpu.train.deepspeed.zero_stage == 2 and gpu.train.deepspeed.bf16
    assert not gpu.model.build_tiny and "Qwen" in gpu.model.name_or_path
    assert params_from_dict(render("embedded", ROOT / "profiles")) == default


def test_params_are_frozen():
    p = load_params(ROOT / "params.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("dotted,value,needle", [
    ("train.lr", -1.0, "key 'train.lr' = -1.0: must be > 0.0"),
    ("train.method", "aerr", "did you mean 'aer'"),
    ("train.group_size", 1, "GRPO needs at least 2 samples"),
    ("train.steps", "ten", "key 'train.steps' = 'ten': must be an integer"),
    ("train.scale_by_std", "yes", "must be true or false"),
    ("difficulty.bucket_edges", [0.5, 0.25], "must be strictly increasing"),
    ("model.tiny.num_heads", 4, "head size 16 < 32"),
    ("entropy.aer.alpha_init", 0.9, "outside [alpha_min, alpha_max]"),
    ("model.prompt_template", "Q:", "no {problem} placeholder"),
    ("train.deepspeed.zero_stage", 4, "use 0 (CPU default), 1, 2 or 3"),
])
def test_bad_values_name_key_and_fix(dotted, value, needle):
    with pytest.raises(ConfigError) as err:
        params_from_dict(tiny_params_dict(**{dotted: value}), "params.yaml")
    msg = str(err.value)
    assert needle in msg
    assert "params.yaml" in msg and "Fix:" in msg


def test_unknown_key_suggests_the_close_one():
    raw = tiny_params_dict()
    raw["train"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"key 'train.learning_rate' = 0.1: unknown key.*"):
        params_from_dict(raw)
    raw = tiny_params_dict()
    raw["trian"] = {}
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        params_from_dict(raw)


def test_missing_required_nested_key():
    raw = tiny_params_dict()
    raw["data"]["sources"] = [{"path": "x.jsonl"}]
    with pytest.raises(ConfigError, match=r"key 'data.sources\[0\].name' = None: is required"):
        params_from_dict(raw)


def test_overrides_and_env_path(tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict()))
    monkeypatch.setenv("AER_PARAMS", str(path))
    p = load_params(overrides={"train.method": "siren", "train.clip_high": 0.28})
    assert p.train.method == "siren" and p.train.clip_high == 0.28 and p.data.synthetic.n_train == 60


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_params(bad)
