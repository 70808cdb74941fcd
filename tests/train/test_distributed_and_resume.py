"""Two CPU ranks with ZeRO-2 and ZeRO-3 over gloo, and SIGKILL at any point followed by an exact resume."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.train.helpers import make_workdir

pytestmark = pytest.mark.slow


def _env(workdir: Path, params: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AER_PARAMS": str(params), "OMP_NUM_THREADS": "1",
            "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}


def _two_ranks(tmp_path: Path, tiny_model_dir, zero_stage: int) -> tuple[list[dict], dict]:
    workdir = tmp_path / f"zero{zero_stage}"
    workdir.mkdir()
    params = make_workdir(workdir, tiny_model_dir, **{"train.deepspeed.zero_stage": zero_stage, "train.steps": 2})
    out = workdir / "report.json"
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2",
                           str(ROOT / "tests/train/two_rank.py"), str(params), str(out)],
                          cwd=workdir, env=_env(workdir, params), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), torch.load(str(out) + ".pt")


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory, tiny_model_dir) -> dict:
    root = tmp_path_factory.mktemp("two_ranks")
    return {stage: _two_ranks(root, tiny_model_dir, stage) for stage in (2, 3)}


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_two_ranks_train_their_shards_and_hold_identical_weights(two_rank_runs, zero_stage):
    report, _ = two_rank_runs[zero_stage]
    assert [r["rank"] for r in report] == [0, 1]
    assert report[0]["sha"] == report[1]["sha"]
    assert report[0]["cursor"] == report[1]["cursor"] == 4  # 2 steps x 2 prompts: both walked the same order
    assert report[0]["first_shard"] and not set(report[0]["first_shard"]) & set(report[1]["first_shard"])
    # rank 0 logs metrics over every rank's samples (2 prompts x 4), not its own shard
    assert report[0]["samples"] == report[1]["samples"] == 8


def test_zero3_partitioned_weights_train_like_zero2(two_rank_runs):
    """ZeRO-3 partitions the weights the fused head reads outside lm_head.forward (registered as an
    external parameter of the scorer); its consolidated export must match ZeRO-2 training."""
    (rep2, w2), (rep3, w3) = two_rank_runs[2], two_rank_runs[3]
    assert set(w2) == set(w3) and len(w3) > 10
    assert all(w3[k].shape == w2[k].shape for k in w2)  # gathered, not the empty partitions
    assert [r["reward_mean"] for r in rep3] == pytest.approx([r["reward_mean"] for r in rep2])
    for k in w2:
        torch.testing.assert_close(w3[k], w2[k], rtol=1e-4, atol=1e-5, msg=k)


def _run(workdir: Path, params: Path, kill_when=None) -> subprocess.CompletedProcess | None:
    cmd = [sys.executable, "-m", "pipeline.stages.train"]
    if kill_when is None:
        return subprocess.run(cmd, cwd=workdir, env=_env(workdir, params), capture_output=True, text=True, timeout=600)
    proc = subprocess.Popen(cmd, cwd=workdir, env=_env(workdir, params), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline, hit = time.monotonic() + 300, False
    while not hit and proc.poll() is None and time.monotonic() < deadline:
        hit = kill_when()
        if not hit:
            time.sleep(0.005)
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # a resume test proves nothing unless the run was really cut: the condition came true, the process was
    # still alive when killed, and it had not exported its final model yet
    assert hit, "the kill condition never came true (the run ended or the deadline passed first)"
    assert running, "the run had already exited when the kill condition came true"
    assert not (workdir / "models/trained/final").exists(), "the run completed before it was killed"
    return None


def _rows(workdir: Path) -> list[dict]:
    rows = list(csv.DictReader(open(workdir / "plots/train.csv")))
    return [{k: v for k, v in r.items() if not k.startswith("time/") and k != "tokens_per_s"} for r in rows]


def _weights(workdir: Path) -> str:
    return hashlib.sha256((workdir / "models/trained/final/model.safetensors").read_bytes()).hexdigest()


def _reference_and_cut(tmp_path: Path, tiny_model_dir, overrides: dict) -> tuple[Path, Path, Path]:
    """An uninterrupted reference run in ref/, and a prepared (not yet run) workdir cut/ with its params."""
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    ref_dir.mkdir()
    cut_dir.mkdir()
    done = _run(ref_dir, make_workdir(ref_dir, tiny_model_dir, **overrides))
    assert done.returncode == 0, done.stderr[-3000:]
    return ref_dir, cut_dir, make_workdir(cut_dir, tiny_model_dir, **overrides)


def _resume_and_match(ref_dir: Path, cut_dir: Path, cut_params: Path) -> None:
    resumed = _run(cut_dir, cut_params)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    assert _rows(cut_dir) == _rows(ref_dir)
    assert _weights(cut_dir) == _weights(ref_dir)


def test_sigkill_mid_checkpoint_write_then_resume_matches_uninterrupted(tmp_path, tiny_model_dir):
    ref_dir, cut_dir, cut_params = _reference_and_cut(tmp_path, tiny_model_dir, {"train.steps": 4, "train.method": "aer"})
    ckpts = cut_dir / "models/trained/checkpoints"
    # 1) killed while step 2's checkpoint is being written (its temp dir exists, no marker yet)
    _run(cut_dir, cut_params, kill_when=lambda: (ckpts / ".tmp-step-000002").exists())
    step2 = ckpts / "step-000002"  # the kill races the rename; either way no partial checkpoint is ever final
    assert not step2.exists() or (step2 / "COMPLETE").is_file()
    assert all((p / "COMPLETE").is_file() for p in ckpts.glob("step-*"))
    # 2) killed again right after a complete checkpoint
    _run(cut_dir, cut_params, kill_when=lambda: (ckpts / "step-000003" / "COMPLETE").exists())
    _resume_and_match(ref_dir, cut_dir, cut_params)
    assert not list(ckpts.glob(".tmp-*"))


def test_zero3_checkpoint_resume_matches_uninterrupted(tmp_path, tiny_model_dir):
    """ZeRO-3 checkpoints hold partitioned weights and optimizer state; resuming one repeats the run."""
    ref_dir, cut_dir, cut_params = _reference_and_cut(tmp_path, tiny_model_dir,
                                                      {"train.steps": 3, "train.deepspeed.zero_stage": 3})
    ckpts = cut_dir / "models/trained/checkpoints"
    _run(cut_dir, cut_params, kill_when=lambda: (ckpts / "step-000002" / "COMPLETE").exists())
    _resume_and_match(ref_dir, cut_dir, cut_params)


def test_rank_env_leaked_into_a_child_does_not_break_single_process_init(tmp_path):
    """Regression: a parent that exported RANK=0 (as our init once did) made a child process look
    launched, so DeepSpeed fell back to MPI discovery and failed without mpi4py."""
    code = ("from pipeline.train.distributed import init, all_sum, launched\n"
            "assert not launched()\n"
            "print(init(), all_sum([2.0]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    env.update(RANK="0", WORLD_SIZE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(0, 1) [2.0]" in proc.stdout
    from pipeline.train.distributed import init

    init()
    assert "RANK" not in os.environ or os.environ.get("MASTER_ADDR")  # in-process init exports no RANK
