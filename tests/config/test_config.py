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
    ("entropy.aer.alpha_init", 1.5, "key 'entropy.aer.alpha_init' = 1.5: is outside [alpha_min, alpha_max] = [0.0, 1.0]"),
    ("entropy.skywork.coef_init", 0.1, "key 'entropy.skywork.coef_init' = 0.1: is outside [coef_min, coef_max]"),
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


def _write(tmp_path, raw, name="params.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


@pytest.mark.parametrize("overrides,needle", [
    ({"seed.x": 1}, "--set seed.x (command line): key 'seed' = 1234: is not a mapping, so 'seed.x' cannot be set"),
    ({"train": 5, "train.lr": 0.1}, "--set train.lr (command line): key 'train' = 5: is not a mapping"),
    ({"train.lr": 0.1, "train": 5}, "--set train (command line): key 'train' = 5: must be a mapping"),
    ({"data.sources.0.path": "x"}, "--set data.sources.0.path (command line): key 'data.sources' = []: is a list "
                                   "of 0 items"),
    ({"seed": 10**25}, "--set seed (command line): key 'seed' = 10000000000000000000000000: does not fit in a 64-bit"),
    ({"seed": 2**32}, "key 'seed' = 4294967296: must be <= 4294967295"),
    ({"compare.seeds": [1, 2**40]}, "key 'compare.seeds' = (1, 1099511627776): must be <= 4294967295"),
    ({"entropy.aer.lr": float("inf")}, "--set entropy.aer.lr (command line): key 'entropy.aer.lr' = inf: must be a "
                                       "finite number"),
    ({"train.lr": float("nan")}, "key 'train.lr' = nan: must be a finite number"),
    ({"compare.phenomena": {"grpo_gain": {"arm": "grpo", "threshold": float("inf")}}},
     "key 'compare.phenomena.grpo_gain.threshold' = inf: must be a finite number"),
    ({"entropy.clip_cov.clip_lb": -1.0}, "key 'entropy.clip_cov.clip_lb' = -1.0: must be >= 0.0"),
    ({"train.clip_high": 5.0}, "key 'train.clip_high' = 5.0: must be <= 1.0. Fix: Clip-Higher"),
    ({"entropy.aer.alpha_min": 1.6}, "--set entropy.aer.alpha_min (command line): key 'entropy.aer.alpha_min' = 1.6: "
                                     "exceeds alpha_max 1.0"),
    ({"entropy.skywork.coef_min": 0.1}, "key 'entropy.skywork.coef_min' = 0.1: exceeds coef_max"),
    ({"model.dtype": "float16"}, "key 'model.dtype' = 'float16': is not supported on this machine (no CUDA GPU)"),
])
def test_regression_bad_params_fail_with_one_line_naming_key_and_fix(tmp_path, monkeypatch, overrides, needle):
    """Regression (issue 13 item 12): raw tracebacks, silently accepted values, alpha_min > alpha_max blamed
    on alpha_init, and --set errors attributed to params.yaml."""
    from pipeline.config import schema

    monkeypatch.setattr(schema, "_cuda_available", lambda: False)  # a CPU machine, wherever the test runs
    path = _write(tmp_path, tiny_params_dict())
    with pytest.raises(ConfigError) as err:
        load_params(path, overrides=overrides)
    msg = str(err.value)
    assert needle in msg and "Fix:" in msg and "\n" not in msg


def test_regression_set_errors_say_params_yaml(tmp_path):
    """A bad value from the file names the file; the same value from --set names the command line."""
    path = _write(tmp_path, tiny_params_dict(**{"train.lr": -1.0}))
    with pytest.raises(ConfigError, match=r"^.*params.yaml: key 'train.lr' = -1.0"):
        load_params(path)
    path = _write(tmp_path, tiny_params_dict())
    with pytest.raises(ConfigError, match=r"^--set train.lr \(command line\): key 'train.lr' = -1.0"):
        load_params(path, overrides={"train.lr": -1.0})


def test_list_items_can_be_overridden_by_index(tmp_path):
    raw = tiny_params_dict(**{"data.sources": [{"name": "a", "path": "a.jsonl"}]})
    p = load_params(_write(tmp_path, raw), overrides={"data.sources.0.path": "b.jsonl"})
    assert p.data.sources[0].path == "b.jsonl"
    with pytest.raises(ConfigError, match=r"address items as data.sources.0 to data.sources.0"):
        load_params(_write(tmp_path, raw), overrides={"data.sources.3.path": "c.jsonl"})


@pytest.mark.parametrize("text,needle", [
    ("- 1\n- 2\n", "p.yaml: the top level is a list, not a mapping of sections"),
    ("seed: 1\ntrain:\n  lr: 0.1\n  steps: 2\n  lr: 0.2\n", "p.yaml:5: key 'lr' is written twice (first on line 3)"),
    ("seed: 1\nseed: 2\n", "p.yaml:2: key 'seed' is written twice (first on line 1)"),
])
def test_regression_top_level_list_and_duplicate_yaml_keys(tmp_path, text, needle):
    with pytest.raises(ConfigError) as err:
        load_params(_write(tmp_path, text, "p.yaml"))
    assert needle in str(err.value) and "Fix:" in str(err.value)


@pytest.mark.parametrize("section", ["seed", "train", "data", "model", "entropy", "tracking"])
def test_regression_missing_section_falls_back_to_schema_defaults(tmp_path, section):
    raw = tiny_params_dict()
    del raw[section]
    with pytest.raises(ConfigError, match=rf"key '{section}' = None: is required but missing. Fix: add '{section}'"):
        load_params(_write(tmp_path, raw))
    raw = tiny_params_dict()
    del raw["train"]["lr"]  # keys inside a section may still default
    from pipeline.config.schema import TrainCfg

    assert load_params(_write(tmp_path, raw)).train.lr == TrainCfg().lr


def test_float16_is_accepted_where_there_is_a_gpu(tmp_path, monkeypatch):
    from pipeline.config import schema

    monkeypatch.setattr(schema, "_cuda_available", lambda: True)
    assert load_params(_write(tmp_path, tiny_params_dict()), overrides={"model.dtype": "float16"}).model.dtype == "float16"


def test_regression_mini_batch_that_does_not_split_over_ranks_is_a_config_error(tmp_path):
    """A mini-batch that does not split over the ranks in whole prompt groups used to pass validation and
    stop training with SystemExit(str) (exit 1) once the ranks were up."""
    path = _write(tmp_path, tiny_params_dict())
    split = {"train.deepspeed.num_processes": 2, "train.prompts_per_step": 4, "train.group_size": 4}
    with pytest.raises(ConfigError) as err:
        load_params(path, overrides={**split, "train.mini_batch_size": 4})  # one group: not one per rank
    msg = str(err.value)
    assert "'train.mini_batch_size' = 4: does not split into whole prompt groups" in msg and "Fix: use a multiple of 8" in msg
    assert load_params(path, overrides={**split, "train.mini_batch_size": 8}).train.mini_batch_size == 8
    assert load_params(path, overrides={**split, "train.mini_batch_size": None}).train.mini_batch_size is None


def test_a_launcher_with_another_rank_count_gets_a_config_error_naming_num_processes(tmp_path):
    from pipeline.train.session import settings_for

    params = load_params(_write(tmp_path, tiny_params_dict()), overrides={"train.prompts_per_step": 4})
    assert settings_for(params, 2).mini_batch_size == 4 * params.train.group_size // 2
    with pytest.raises(ConfigError, match=r"num_processes' = 1: the launcher started 3 ranks.*Fix"):
        settings_for(params, 3)


@pytest.mark.parametrize("temperature,variants", [
    (1.0, [{"temperature": 0.6}, {"temperature": 0.6, "top_p": 0.9}]),  # two variants labelled @T0.6
    (0.6, [{"temperature": 0.6}]),                                      # a variant repeating the main evaluation
])
def test_regression_eval_variants_with_one_temperature_overwrote_each_other(tmp_path, temperature, variants):
    """Two variants at one temperature got the same `<benchmark>@T<t>` label; the second silently
    overwrote the first's results."""
    path = _write(tmp_path, tiny_params_dict())
    with pytest.raises(ConfigError, match=r"key 'eval.variants' = .*repeats a temperature.*Fix"):
        load_params(path, overrides={"eval.temperature": temperature, "eval.variants": variants})
    ok = load_params(path, overrides={"eval.temperature": 1.0, "eval.variants": [{"temperature": 0.6},
                                                                                 {"temperature": 0.3}]})
    assert [v.temperature for v in ok.eval.variants] == [0.6, 0.3]
