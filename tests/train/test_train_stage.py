"""The train stage end to end on the tiny model: every method, mini-batches, NaN skipping, telemetry."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from pipeline.config import load_params
from pipeline.rl import REGISTRY
from tests.train.helpers import make_workdir

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def _rows(workdir):
    return list(csv.DictReader(open(workdir / "plots/train.csv")))


def _alternating_rewards(monkeypatch):
    """Half the samples of every group rewarded, so every method has a policy gradient on the tiny model
    (which rarely solves anything)."""
    from pipeline.rewards.verify import RewardResult
    from pipeline.train import loop

    monkeypatch.setattr(loop, "score_batch", lambda completions, golds: [
        RewardResult(float(i % 2), "ok" if i % 2 else "wrong") for i in range(len(completions))])


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_trains_a_few_steps(workdir, tiny_model_dir, method, monkeypatch):
    from pipeline.stages import train

    _alternating_rewards(monkeypatch)
    params = load_params(make_workdir(workdir, tiny_model_dir, **{"train.method": method, "train.lr": 1e-2}))
    metrics = train.run(params)
    assert metrics["method"] == method and metrics["skipped_steps"] == 0
    rows = _rows(workdir)
    assert [int(r["step"]) for r in rows] == [0, 1]
    for key in ("reward_mean", "entropy", "entropy_p90", "clip_frac", "approx_kl", "time/rollout", "tokens_per_s",
                "grad_norm"):
        assert math.isfinite(float(rows[-1][key])), key
    assert float(rows[-1]["optimizer_steps"]) == 2  # updates_per_batch 2 over one mini-batch
    base = load_file(tiny_model_dir / "model.safetensors")
    trained = load_file(workdir / "models/trained/final/model.safetensors")
    unchanged = [k for k in base if torch.equal(base[k], trained[k])]
    assert not unchanged, f"parameters that did not train: {unchanged}"
    assert (workdir / "plots/train/entropy.png").is_file()
    assert any(k.startswith("aer_weight/") for k in rows[-1]) == (method == "aer")  # only AER logs its weights
    if method == "aer":
        assert float(rows[-1]["reg/target"]) == pytest.approx(params.entropy.aer.tau * 1.0)  # H0 = 1.0 here


def test_coefficient_moves_and_its_first_nonzero_step_is_recorded(workdir, tiny_model_dir):
    from pipeline.stages import train

    params = load_params(make_workdir(workdir, tiny_model_dir, **{
        "train.method": "aer", "train.steps": 3, "entropy.aer.alpha_init": 0.0, "entropy.aer.tau": 10.0,
        "entropy.aer.lr": 0.01, "entropy.aer.kp": 0.0, "entropy.aer.alpha_max": 1.0}))
    metrics = train.run(params)  # kp 0: the proportional term would saturate alpha_max at once
    coefs = [float(r["reg/coef"]) for r in _rows(workdir)]
    assert coefs[0] == 0.0 and coefs[1] > 0.0 and coefs[2] > coefs[1]  # entropy far below target: rises
    assert metrics["coef_first_nonzero_step"] == 1


def test_first_update_ratio_is_exactly_one(workdir, tiny_model_dir):
    from pipeline.stages import train

    train.run(load_params(make_workdir(workdir, tiny_model_dir, **{"train.steps": 1, "train.updates_per_batch": 1})))
    row = _rows(workdir)[0]
    assert float(row["ratio_mean"]) == pytest.approx(1.0, abs=1e-6) and float(row["clip_frac"]) == 0.0


def test_second_update_epoch_shows_in_kl_and_ratio(workdir, tiny_model_dir):
    """Regression: clip fraction and KL were taken from the first epoch only, where they are always 0."""
    from pipeline.stages import train

    train.run(load_params(make_workdir(workdir, tiny_model_dir, **{"train.steps": 1, "train.updates_per_batch": 2,
                                                                  "train.method": "fixed", "train.lr": 1e-2})))
    row = _rows(workdir)[0]
    assert float(row["approx_kl"]) > 0 and float(row["ratio_mean"]) != pytest.approx(1.0, abs=1e-9)


def test_mini_batches_take_several_optimizer_steps_and_keep_every_grad_norm(workdir, tiny_model_dir, monkeypatch):
    """PPO mini-batches (verl's ppo_mini_batch_size): 2 prompts x 4 samples in mini-batches of 4 samples,
    2 passes -> 4 optimizer steps per rollout batch, old log-probs computed once before the first."""
    from pipeline.stages import train
    from pipeline.train import update as update_mod

    _alternating_rewards(monkeypatch)
    passes = []
    original = update_mod.rollout_pass
    monkeypatch.setattr(update_mod, "rollout_pass", lambda *a, **k: passes.append(1) or original(*a, **k))
    train.run(load_params(make_workdir(workdir, tiny_model_dir, **{
        "train.steps": 1, "train.mini_batch_size": 4, "train.updates_per_batch": 2, "train.method": "none",
        "train.lr": 5e-2})))
    row = _rows(workdir)[0]
    assert float(row["optimizer_steps"]) == 4 and len(passes) == 1
    assert float(row["grad_norm_max"]) >= float(row["grad_norm"]) > 0
    assert float(row["clip_frac"]) > 0  # the policy moved between optimizer steps, so the clip acts


def test_nan_loss_skips_the_step_once_and_never_reaches_a_checkpoint(workdir, tiny_model_dir, monkeypatch):
    """Regression (issue 13): a poisoned step was counted once per optimizer update (2 with 2 updates)."""
    from pipeline.rl.methods.base import Regularizer, RegOutput
    from pipeline.stages import train

    calls = {"n": 0}
    original = Regularizer.term

    def poisoned(self, inp, ctx):
        out = original(self, inp, ctx)
        calls["n"] += 1
        if calls["n"] == 1:  # the first micro-batch of step 0
            return RegOutput(out.term + float("nan"), out.metrics)
        return out

    monkeypatch.setattr(Regularizer, "term", poisoned)
    metrics = train.run(load_params(make_workdir(workdir, tiny_model_dir, **{"train.method": "none"})))
    assert metrics["skipped_steps"] == 1 and metrics["skipped_updates"] == 1
    from pipeline.train import checkpoint

    assert checkpoint.read_state(workdir / "models/trained/checkpoints/step-000002")["skipped_steps"] == 1
    weights = load_file(workdir / "models/trained/final/model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    rows = _rows(workdir)
    assert rows[0]["skipped_steps"] == "1" and rows[1]["skipped_steps"] == "1"
    assert all(math.isfinite(float(v)) for r in rows for k, v in r.items() if v not in ("",))
    text = json.dumps(json.load(open(workdir / "metrics/train.json")))
    assert "NaN" not in text and "Infinity" not in text


def test_nan_entropy_keeps_aer_alpha_finite_regression(workdir, tiny_model_dir, monkeypatch):
    """Regression (issue 13): one non-finite entropy made AER's alpha NaN for good, every later step was
    skipped and the stage exited 0 with reg/coef NaN."""
    from pipeline.stages import train
    from pipeline.train import update as update_mod

    original = update_mod.rollout_pass
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        olds, ents, tracked = original(*args, **kwargs)
        calls["n"] += 1
        return olds, ents, ([float("nan"), tracked[1]] if calls["n"] == 1 else tracked)

    monkeypatch.setattr(update_mod, "rollout_pass", poisoned)
    params = load_params(make_workdir(workdir, tiny_model_dir, **{"train.method": "aer", "train.steps": 3,
                                                                  "entropy.aer.alpha_init": 0.01}))
    with pytest.warns(RuntimeWarning, match="non-finite statistic"):
        metrics = train.run(params)
    assert math.isfinite(metrics["reg/coef"]) and metrics["skipped_steps"] == 0
    assert float(_rows(workdir)[0]["reg/nonfinite_stats"]) == 1


def test_consecutive_skipped_steps_stop_the_run(workdir, tiny_model_dir, monkeypatch):
    from pipeline.rl.methods.base import Regularizer, RegOutput
    from pipeline.stages import train

    monkeypatch.setattr(Regularizer, "term", lambda self, inp, ctx: RegOutput(inp.entropy.sum() * float("nan")))
    params = load_params(make_workdir(workdir, tiny_model_dir, **{"train.method": "none", "train.steps": 5,
                                                                  "train.max_consecutive_skips": 2}))
    with pytest.raises(SystemExit) as exc:
        train.run(params)
    assert exc.value.code == 1
    assert not (workdir / "models/trained/checkpoints/step-000002").exists()  # never checkpointed


def test_grad_norm_is_logged_and_cov_selection_is_global(workdir, tiny_model_dir, monkeypatch):
    from pipeline.rl.methods.clip_cov import ClipCov
    from pipeline.stages import train

    seen = []
    original = ClipCov.batch_context

    def spy(self, stats, comm):
        out = original(self, stats, comm)
        seen.append(([o["select"] for o in out], [s.mask for s in stats]))
        return out

    monkeypatch.setattr(ClipCov, "batch_context", spy)
    _alternating_rewards(monkeypatch)
    params = load_params(make_workdir(workdir, tiny_model_dir, **{
        "train.method": "clip_cov", "train.steps": 1, "train.micro_batch_size": 2, "entropy.clip_cov.clip_ratio": 0.1,
        "entropy.clip_cov.clip_lb": 0.0, "entropy.clip_cov.clip_ub": 100.0, "train.updates_per_batch": 2}))
    train.run(params)
    assert len(seen) == 2  # once per optimizer step, over all its micro-batches
    selections, masks = seen[0]
    assert len(selections) == 4
    n_tokens = sum(int(m.sum()) for m in masks)
    assert sum(int(sel.sum()) for sel in selections) <= max(int(0.1 * n_tokens), 1)
    assert float(_rows(workdir)[0]["grad_norm"]) > 0


def test_resuming_a_finished_run_keeps_its_final_metrics(workdir, tiny_model_dir):
    """Regression: re-running a finished run resumed at its last step, trained nothing, and overwrote
    metrics/train.json with empty metrics (entropy nan)."""
    from pipeline.stages import train

    params = load_params(make_workdir(workdir, tiny_model_dir, **{"train.method": "fixed"}))
    first = train.run(params)
    again = train.run(params)
    assert again["entropy"] == first["entropy"] and math.isfinite(again["entropy"])
    assert again["reward_mean"] == first["reward_mean"]


def test_samples_jsonl_duplicated_after_resume_regression(workdir, tiny_model_dir):
    """Regression (issue 13): samples.jsonl was appended to and never trimmed on resume, so replayed steps
    appeared twice.  After a resume it holds exactly the rows of an uninterrupted run."""
    from pipeline.stages import train

    params = load_params(make_workdir(workdir, tiny_model_dir, **{"train.steps": 3, "train.checkpoint_every": 2}))
    train.run(params)
    path = workdir / "models/trained/samples.jsonl"
    uninterrupted = path.read_text()
    # simulate a kill after step 2's rows were appended but before its checkpoint: drop checkpoint 3
    import shutil

    shutil.rmtree(workdir / "models/trained/checkpoints/step-000003")
    train.run(params)
    assert path.read_text() == uninterrupted
    steps = [json.loads(line)["step"] for line in uninterrupted.splitlines()]
    assert steps == sorted(steps) and set(steps) == {0, 1, 2}


def test_checkpoint_from_other_code_or_params_is_not_resumed(workdir, tiny_model_dir, monkeypatch, capsys):
    from pipeline.stages import train
    from pipeline.train import session

    params = load_params(make_workdir(workdir, tiny_model_dir))
    train.run(params)
    monkeypatch.setattr(session, "fingerprint", lambda p: "other-code")
    train.run(params)
    assert "written with other params or code; starting fresh" in capsys.readouterr().out


def test_non_finite_trainer_state_is_never_checkpointed():
    from pipeline.train.loop import nonfinite_keys

    assert nonfinite_keys({"a": 1.0, "reg": {"controller": {"alpha": float("nan")}}, "l": [0.0, float("inf")]}) == \
        ["reg.controller.alpha", "l[1]"]
    assert nonfinite_keys({"a": 1.0, "b": None, "c": "x", "d": [1, 2]}) == []
