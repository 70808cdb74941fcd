"""The train stage end to end on the tiny model: every method, NaN skipping, and telemetry outputs."""
from __future__ import annotations

import csv
import math

import pytest
import torch

from pipeline.config import load_params
from tests.train.helpers import make_workdir

pytestmark = pytest.mark.slow
METHODS = ["none", "grpo", "fixed", "aer", "aent", "siren", "skywork", "clip_cov", "kl_cov"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_a_few_steps(workdir, tiny_model_dir, method):
    from pipeline.stages import train

    params = load_params(make_workdir(workdir, tiny_model_dir, **{"train.method": method}))
    metrics = train.run(params)
    assert metrics["method"] == method and metrics["skipped_steps"] == 0
    rows = list(csv.DictReader(open(workdir / "plots/train.csv")))
    assert [int(r["step"]) for r in rows] == [0, 1]
    for key in ("reward_mean", "entropy", "entropy_p90", "clip_frac", "approx_kl", "time/rollout", "tokens_per_s"):
        assert math.isfinite(float(rows[-1][key])), key
    assert (workdir / "models/trained/final/model.safetensors").is_file()
    assert (workdir / "plots/train/entropy.png").is_file()
    if method == "aer":
        assert float(rows[-1]["reg/target"]) == pytest.approx(params.entropy.aer.tau * 1.0)  # H0 = 1.0 here
        assert any(k.startswith("aer_weight/") for k in rows[-1])


def test_first_update_ratio_is_exactly_one(workdir, tiny_model_dir):
    from pipeline.stages import train

    train.run(load_params(make_workdir(workdir, tiny_model_dir, **{"train.steps": 1, "train.updates_per_batch": 1})))
    row = next(csv.DictReader(open(workdir / "plots/train.csv")))
    assert float(row["ratio_mean"]) == pytest.approx(1.0, abs=1e-6) and float(row["clip_frac"]) == 0.0


def test_second_update_epoch_shows_in_kl_and_ratio(workdir, tiny_model_dir):
    """Regression: clip fraction and KL were taken from the first epoch only, where they are always 0."""
    from pipeline.stages import train

    train.run(load_params(make_workdir(workdir, tiny_model_dir, **{"train.steps": 1, "train.updates_per_batch": 2,
                                                                  "train.method": "fixed", "train.lr": 1e-2})))
    row = next(csv.DictReader(open(workdir / "plots/train.csv")))
    assert float(row["approx_kl"]) > 0 and float(row["ratio_mean"]) != pytest.approx(1.0, abs=1e-9)


def test_nan_loss_skips_the_step_and_never_reaches_a_checkpoint(workdir, tiny_model_dir, monkeypatch):
    from pipeline.rl.regularizers import Regularizer, RegOutput
    from pipeline.stages import train

    calls = {"n": 0}
    original = Regularizer.term

    def poisoned(self, inp):
        out = original(self, inp)
        calls["n"] += 1
        if calls["n"] == 1:  # the first micro-batch of step 0
            return RegOutput(out.term + float("nan"), out.stat_sum, out.stat_count, out.metrics)
        return out

    monkeypatch.setattr(Regularizer, "term", poisoned)
    metrics = train.run(load_params(make_workdir(workdir, tiny_model_dir, **{"train.method": "none"})))
    assert metrics["skipped_steps"] == 1
    from pipeline.train import checkpoint

    state = checkpoint.read_state(workdir / "models/trained/checkpoints/step-000002")
    assert state["skipped_steps"] == 1
    from safetensors.torch import load_file

    weights = load_file(workdir / "models/trained/final/model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    rows = list(csv.DictReader(open(workdir / "plots/train.csv")))
    assert rows[0]["skipped_steps"] == "1"


def test_grad_norm_is_logged_and_cov_selection_is_global(workdir, tiny_model_dir, monkeypatch):
    from pipeline.rl.baselines import ClipCov
    from pipeline.stages import train

    seen = []
    original = ClipCov.term

    def spy(self, inp):
        seen.append((inp.cov_select, inp.mask))
        return original(self, inp)

    monkeypatch.setattr(ClipCov, "term", spy)
    build_from_params = train.regularizer_from_params
    # every token a candidate, zero covariances included (the tiny model's rewards may all be equal); params
    # refuse a negative clip_lb, so the regularizer is built directly
    monkeypatch.setattr(train, "regularizer_from_params", lambda params, h0: ClipCov(
        clip_ratio=0.1, clip_lb=-100.0, clip_ub=100.0, seed=params.seed))
    params = load_params(make_workdir(workdir, tiny_model_dir, **{
        "train.method": "clip_cov", "train.steps": 1, "train.micro_batch_size": 2, "entropy.cov.clip_ratio": 0.1}))
    train.run(params)
    n_micro = len(seen) // params.train.updates_per_batch
    assert n_micro == 4 and all(sel is not None for sel, _ in seen)
    first = seen[:n_micro]  # one selection over the whole batch, kept over the update epochs
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, seen[n_micro:]))
    n_tokens = sum(int(m.sum()) for _, m in first)
    assert sum(int(sel.sum()) for sel, _ in first) == max(int(0.1 * n_tokens), 1)
    monkeypatch.setattr(train, "regularizer_from_params", build_from_params)  # the real regularizer again
    # the fixed bonus always has a gradient (rewards of the tiny model may all be equal -> zero advantages)
    train.run(load_params(make_workdir(workdir, tiny_model_dir, **{"train.method": "fixed", "train.steps": 1})))
    row = next(csv.DictReader(open(workdir / "plots/train.csv")))
    assert float(row["grad_norm"]) > 0


def test_resuming_a_finished_run_keeps_its_final_metrics(workdir, tiny_model_dir):
    """Regression: re-running a finished run resumed at its last step, trained nothing, and overwrote
    metrics/train.json with empty metrics (entropy nan)."""
    from pipeline.stages import train

    params = load_params(make_workdir(workdir, tiny_model_dir, **{"train.method": "fixed"}))
    first = train.run(params)
    again = train.run(params)
    assert again["entropy"] == first["entropy"] and math.isfinite(again["entropy"])
    assert again["reward_mean"] == first["reward_mean"]


def test_checkpoint_from_other_code_or_params_is_not_resumed(workdir, tiny_model_dir, monkeypatch, capsys):
    from pipeline.stages import train

    params = load_params(make_workdir(workdir, tiny_model_dir))
    train.run(params)
    monkeypatch.setattr(train, "fingerprint", lambda p: "other-code")
    train.run(params)
    assert "written with other params or code; starting fresh" in capsys.readouterr().out
