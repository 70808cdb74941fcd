"""Stage entry points: every bad param, missing input or full disk ends in one line and exit 2, before any
model is loaded."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from pipeline.config import ConfigError, load_params
from pipeline.stages import common
from tests.conftest import ROOT, tiny_params_dict


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    """A working directory with params.yaml, the prepared data and a (fake) base model directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict()))
    (tmp_path / "data/prepared").mkdir(parents=True)
    for split in ("train", "eval"):
        (tmp_path / f"data/prepared/{split}.jsonl").write_text("")
    (tmp_path / "models/base").mkdir(parents=True)
    (tmp_path / "models/base/config.json").write_text("{}")
    return tmp_path


CASES = [
    ("train", ["--set", "seed.x=1"], "--set seed.x (command line): key 'seed'"),
    ("train", ["--set", "train=5", "--set", "train.lr=0.1"], "key 'train' = 5"),
    ("train", ["--set", "data.sources.0.path=x"], "key 'data.sources' = []"),
    ("train", ["--set", "train.lr=[1"], "--set train.lr (command line): value '[1' is not valid YAML"),
    ("train", ["--set", "seed=99999999999999999999999"], "does not fit in a 64-bit integer"),
    ("train", ["--set", "entropy.aer.lr=.inf"], "key 'entropy.aer.lr' = inf: must be a finite number"),
    ("train", [], "params.yaml: key 'difficulty.out' = 'data/difficulty/pass_rates.jsonl': "
                  "data/difficulty/pass_rates.jsonl does not exist. Fix: run the 'difficulty' stage first"),
    ("difficulty", ["--set", "model.build_tiny=false", "--set", "model.name_or_path=nowhere/model"],
     "key 'model.name_or_path' = 'nowhere/model': is neither a local model directory nor in the local Hugging Face"),
    ("difficulty", ["--set", "difficulty.max_new_tokens=120"],
     "key 'difficulty.max_new_tokens' = 120: plus the longest prompt (at least"),
]


@pytest.mark.slow
def test_regression_bad_params_exit_2_with_one_line_before_any_model_is_loaded(stage_dir):
    """Regression (issue 13 item 12): these gave raw tracebacks or failed only after 15-23 s of setup."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{stage_dir / 'm.db'}"}
    env.pop("AER_PARAMS", None)
    for stage, argv, needle in CASES:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", f"pipeline.stages.{stage}", *argv], cwd=stage_dir, env=env,
                              capture_output=True, text=True, timeout=120)
        elapsed = time.monotonic() - start
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (argv, proc.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (argv, lines)
        assert "Fix:" in lines[0] and elapsed < 30, (argv, elapsed)
    assert not (stage_dir / "m.db").exists()  # no tracked run was opened, so nothing heavy started


def test_inputs_checked_per_stage(stage_dir):
    params = load_params("params.yaml")
    common.check_inputs(params, common.STAGE_READS["difficulty"], "params.yaml")  # all present
    (stage_dir / "models/base/config.json").unlink()
    with pytest.raises(ConfigError, match=r"key 'model.name_or_path' = 'models/base': models/base/config.json does "
                                          r"not exist. Fix: run the 'base_model' stage first"):
        common.check_inputs(params, common.STAGE_READS["difficulty"], "params.yaml")
    (stage_dir / "models/final").mkdir()
    common.check_inputs(load_params("params.yaml", {"eval.models": ["trained"], "train.out_dir": "models"}),
                        common.STAGE_READS["evaluate"], "params.yaml")  # the base model is not read
    with pytest.raises(ConfigError, match=r"key 'entropy.measure.out'.*run the 'entropy' stage first"):
        common.check_inputs(params, common.STAGE_READS["compare"], "params.yaml")


def test_context_check_uses_the_tiny_model_or_a_local_config(stage_dir):
    params = load_params("params.yaml")  # 96 new tokens + prompts of grades 1-4 fit in 128 positions
    common.check_context(params, "train.max_new_tokens", "params.yaml")
    with pytest.raises(ConfigError, match=r"key 'train.max_new_tokens' = 128: plus the longest prompt \(at least "
                                          r"\d+ tokens\) exceeds the model context \(model.tiny.max_position_embeddings"):
        common.check_context(load_params("params.yaml", {"train.max_new_tokens": 128}), "train.max_new_tokens", "p")
    (stage_dir / "hub").mkdir()
    (stage_dir / "hub/config.json").write_text(json.dumps({"max_position_embeddings": 32}))
    hub = load_params("params.yaml", {"model.build_tiny": False, "model.name_or_path": "hub"})
    with pytest.raises(ConfigError, match=r"exceeds the model context \(max_position_embeddings of hub = 32\)"):
        common.check_context(hub, "eval.max_new_tokens", "params.yaml")


@pytest.mark.parametrize("code,needle", [(errno.ENOSPC, "no space left on device"),
                                         (errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "permission denied (read-only output?)")])
def test_regression_disk_full_or_read_only_exits_2_with_one_line(stage_dir, monkeypatch, capsys, code, needle):
    """Regression (issue 13 item 3): a full or read-only output disk gave a traceback."""
    from pipeline.utils.io import write_json

    def run(params):
        write_json(stage_dir / "metrics/out.json", {"a": 1})

    def full(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("pipeline.utils.io.os.fsync", full)
    monkeypatch.setattr(sys, "argv", ["stage"])
    with pytest.raises(SystemExit) as exc:
        common.main_guard(run, "prepare")
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err == [f"error: {stage_dir / 'metrics/out.json'}: {needle}. Fix: "
                                           + err[0].split(". Fix: ", 1)[1]]
    assert list((stage_dir / "metrics").iterdir()) == []


def test_other_os_errors_are_not_hidden(stage_dir, monkeypatch):
    def run(params):
        raise FileNotFoundError(errno.ENOENT, "No such file", "x")

    monkeypatch.setattr(sys, "argv", ["stage"])
    with pytest.raises(FileNotFoundError):
        common.main_guard(run, "prepare")
