"""The GPU profile's training shape on CPU: its mini-batching and its Clip-Higher arm, on the tiny model.

Issue 11: with one optimizer step per rollout batch the importance ratio is exactly 1, so Clip-Higher was
GRPO and KL-Cov did nothing.  The GPU profile now takes several optimizer steps per rollout batch; run
for 2 steps with its train.* keys (batch sizes scaled down in proportion, the tiny model's learning rate,
fp32 ZeRO-0 on CPU), the Clip-Higher arm shows more than one optimizer step and a non-zero clip fraction.
"""
from __future__ import annotations

import csv

import pytest

from pipeline.config import load_params, params_from_dict, profiles
from pipeline.config.schema import arm_params, optimizer_steps_per_rollout
from tests.conftest import ROOT
from tests.train.helpers import make_workdir
from tests.train.test_train_stage import _alternating_rewards

pytestmark = pytest.mark.slow


def test_gpu_profile_clip_higher_arm_takes_several_steps_and_clips(tmp_path, monkeypatch, tiny_model_dir):
    from pipeline.stages import train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    gpu = params_from_dict(profiles.render("gpu", ROOT / "profiles"), "profiles/gpu.yaml")
    arm = arm_params(gpu, "clip_higher", "profiles/gpu.yaml")
    steps_per_rollout = optimizer_steps_per_rollout(arm.train)
    assert steps_per_rollout > 1 and arm.train.clip_high > arm.train.clip_low
    shrink = arm.train.prompts_per_step // 8  # 8 prompts per step on CPU, same number of mini-batches
    keys = {k: v for k, v in profiles.render("gpu", ROOT / "profiles")["train"].items()
            if k not in ("deepspeed", "out_dir", "log_dir", "metrics_file", "checkpoint_every")}
    overrides = {f"train.{k}": v for k, v in keys.items()}
    overrides.update({"train.method": arm.train.method, "train.clip_high": arm.train.clip_high, "train.steps": 2,
                      "train.prompts_per_step": 8, "train.group_size": 4,
                      "train.mini_batch_size": arm.train.mini_batch_size // shrink // 2, "train.max_new_tokens": 16,
                      "train.lr": 5e-2})
    params = load_params(make_workdir(tmp_path, tiny_model_dir, **overrides))
    assert optimizer_steps_per_rollout(params.train) == steps_per_rollout
    _alternating_rewards(monkeypatch)
    train.run(params)
    rows = list(csv.DictReader(open(tmp_path / "plots/train.csv")))
    assert all(float(r["optimizer_steps"]) == steps_per_rollout for r in rows)
    assert max(float(r["clip_frac"]) for r in rows) > 0
