"""Profiles: schema defaults == the embedded profile == params.yaml; overlays render, validate, and a switch
never loses local edits."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from pipeline.config import ConfigError, Params, flatten, load_params, params_from_dict, to_dict
from pipeline.config.profiles import available, deep_merge, dump, local_edits, render, section_leaves, switch
from tests.conftest import ROOT

PROFILES = available(ROOT / "profiles")


def test_schema_defaults_are_the_committed_params_yaml():
    defaults, committed = flatten(to_dict(Params())), flatten(to_dict(load_params(ROOT / "params.yaml")))
    differ = {k: (defaults.get(k), committed.get(k)) for k in set(defaults) | set(committed)
              if defaults.get(k) != committed.get(k)}
    assert not differ, f"schema default vs params.yaml: {differ}"


def test_params_yaml_is_the_embedded_rendering_without_edits():
    assert render("embedded", ROOT / "profiles") == to_dict(load_params(ROOT / "params.yaml"))
    assert local_edits(ROOT / "params.yaml", ROOT / "profiles") == ("embedded", [])


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_renders_to_valid_params_named_after_it(name):
    params = params_from_dict(render(name, ROOT / "profiles"))
    assert params.profile == name
    text = dump(to_dict(params), name)  # dump checks that the YAML parses back to the same params
    assert f"profile: {name}\n" in text


@pytest.mark.parametrize("name", PROFILES)
def test_overlays_hold_only_keys_that_differ_from_the_defaults(name):
    """An overlay is not a hand-kept copy: a key equal to its default is noise that hides drift."""
    overlay = section_leaves(yaml.safe_load((ROOT / "profiles" / f"{name}.yaml").read_text()) or {})
    defaults = section_leaves(to_dict(Params()))
    same = [k for k, v in overlay.items() if k in defaults and v == defaults[k]]
    assert "profile" not in overlay and not same, f"profiles/{name}.yaml repeats defaults: {same}"


def test_gpu_profile_is_the_real_setup():
    gpu = params_from_dict(render("gpu", ROOT / "profiles"))
    assert gpu.model.name_or_path == "hub/models/Qwen2.5-Math-1.5B" and gpu.hub.model.repo == "Qwen/Qwen2.5-Math-1.5B"
    assert gpu.train.deepspeed.zero_stage == 2 and [s.name for s in gpu.data.sources] == ["math", "gsm8k"]
    assert gpu.entropy.aer.tau == 0.4 and gpu.seed == Params().seed  # untouched keys keep the defaults


def test_deep_merge_merges_sections_and_replaces_lists_and_named_mappings():
    base = to_dict(Params())
    merged = deep_merge(base, {"train": {"lr": 0.5}, "eval": {"models": ["trained"]},
                               "compare": {"arms": {"grpo": {"method": "none"}}}})
    assert merged["train"]["lr"] == 0.5 and merged["train"]["steps"] == base["train"]["steps"]
    assert merged["eval"]["models"] == ["trained"]
    assert merged["compare"]["arms"] == {"grpo": {"method": "none"}}  # arms replaced whole, not merged
    assert merged["compare"]["seeds"] == base["compare"]["seeds"] and base["train"]["lr"] != 0.5


@pytest.fixture
def workdir(tmp_path):
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "profiles" / "short.yaml").write_text("# a short run\ntrain: {steps: 3}\n")
    switch("embedded", tmp_path / "params.yaml", tmp_path / "profiles")
    return tmp_path


def test_switching_back_and_forth_without_edits_reproduces_the_file(workdir):
    first = (workdir / "params.yaml").read_bytes()
    assert "profile 'short'" in switch("short", workdir / "params.yaml", workdir / "profiles")
    assert load_params(workdir / "params.yaml").train.steps == 3
    assert (workdir / "params.yaml").read_text().startswith("# a short run\n")
    switch("embedded", workdir / "params.yaml", workdir / "profiles")
    assert (workdir / "params.yaml").read_bytes() == first


def test_regression_make_profile_overwrote_local_edits(workdir):
    """Issue 14 item 14: `make profile` copied the profile over params.yaml, losing edits silently."""
    path = workdir / "params.yaml"
    path.write_text(path.read_text().replace("  steps: 60\n", "  steps: 7\n"))
    edited = path.read_bytes()
    with pytest.raises(ConfigError, match=r"train\.steps: 7 \(profile embedded renders 60\)"):
        switch("short", path, workdir / "profiles")
    assert path.read_bytes() == edited
    proc = subprocess.run([sys.executable, "-m", "pipeline.config.profiles", "short"], cwd=workdir,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert proc.returncode == 2 and "train.steps" in proc.stderr and path.read_bytes() == edited


def test_force_keeps_a_backup_and_never_overwrites_an_earlier_one(workdir):
    path = workdir / "params.yaml"
    path.write_text(path.read_text().replace("  steps: 60\n", "  steps: 7\n"))
    edited = path.read_bytes()
    assert "params.embedded.local.yaml" in switch("short", path, workdir / "profiles", force=True)
    assert (workdir / "params.embedded.local.yaml").read_bytes() == edited
    path.write_text(path.read_text().replace("  steps: 3\n", "  steps: 4\n"))
    switch("embedded", path, workdir / "profiles", force=True)
    assert (workdir / "params.short.local.yaml").is_file()
    path.write_text(path.read_text().replace("  steps: 60\n", "  steps: 8\n"))
    switch("short", path, workdir / "profiles", force=True)
    assert (workdir / "params.embedded.local.1.yaml").is_file()
    assert (workdir / "params.embedded.local.yaml").read_bytes() == edited


def test_a_file_that_does_not_load_or_names_no_profile_counts_as_edited(workdir):
    path = workdir / "params.yaml"
    path.write_text(path.read_text().replace("profile: embedded", "profile: mine"))
    with pytest.raises(ConfigError, match="profiles/mine.yaml: no such profile"):
        switch("short", path, workdir / "profiles")
    path.write_text("train: {steps: -1}\n")
    with pytest.raises(ConfigError, match="does not load"):
        switch("short", path, workdir / "profiles")
    assert path.read_text() == "train: {steps: -1}\n"


def test_an_unknown_or_invalid_target_fails_before_touching_params(workdir):
    before = (workdir / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match="no such profile. Fix: use one of embedded, gpu, gpu-smoke, short"):
        switch("nope", workdir / "params.yaml", workdir / "profiles")
    (workdir / "profiles" / "bad.yaml").write_text("train: {clip_low: 1.5}\n")
    with pytest.raises(ConfigError, match=r"profiles/bad.yaml: key 'train.clip_low' = 1.5"):
        switch("bad", workdir / "params.yaml", workdir / "profiles")
    assert (workdir / "params.yaml").read_bytes() == before


def test_make_profile_calls_the_renderer_and_passes_force():
    out = subprocess.run(["make", "-n", "profile", "PROFILE=gpu", "FORCE=1"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "-m pipeline.config.profiles gpu --force" in out and "cp " not in out


def test_regression_overlay_with_a_repeated_key_was_read_silently(workdir):
    """Overlays were read with yaml.safe_load, which keeps the last of two equal keys without a word."""
    before = (workdir / "params.yaml").read_bytes()
    (workdir / "profiles" / "twice.yaml").write_text("train:\n  lr: 1.0e-4\n  lr: 1.0e-3\n")
    with pytest.raises(ConfigError, match=r"profiles/twice.yaml:3: key 'lr' is written twice \(first on line 2\)"):
        switch("twice", workdir / "params.yaml", workdir / "profiles")
    assert (workdir / "params.yaml").read_bytes() == before
