"""`python -m pipeline.stages.<name> --help`: what the stage does, the keys it reads with values, examples."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
import yaml

from pipeline.config import load_params, to_dict
from pipeline.stages.common import cli_preamble, help_leaves, stage_help
from tests.conftest import ROOT, tiny_params_dict

ENTRY_POINTS = sorted(p.stem for p in (ROOT / "pipeline/stages").glob("*.py") if "\n    main_guard(run" in p.read_text())


def test_every_main_guard_stage_is_covered():
    assert {"prepare", "base_model", "difficulty", "entropy", "train", "evaluate", "compare"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_names_the_stage_its_keys_with_values_and_examples(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("AER_PARAMS", raising=False)
    module = importlib.import_module(f"pipeline.stages.{name}")
    text = stage_help(module)
    assert text.startswith(f"usage: python -m pipeline.stages.{name}")
    assert module.__doc__.strip().splitlines()[0] in text
    flat = help_leaves(to_dict(load_params(ROOT / "params.yaml")))
    assert module.READS, f"pipeline.stages.{name} declares no READS"
    for key in module.READS:
        leaves = [k for k in flat if k == key or k.startswith(key + ".")]
        assert leaves and all(f"\n  {k} = " in text for k in leaves), f"--help of {name} misses {key}"
    assert "Examples:" in text and f"python -m pipeline.stages.{name} --set " in text


def test_help_leaves_keep_empty_sections():
    assert help_leaves({"a": {"b": 1, "c": {}}, "d": []}) == {"a.b": 1, "a.c": {}, "d": []}


def test_regression_help_was_rejected_as_an_unexpected_argument(tmp_path):
    """Issue 14 item 13: `--help` ended in 'unexpected argument' and exit 2.  It must answer and run nothing."""
    out = subprocess.run([sys.executable, "-m", "pipeline.stages.prepare", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "AER_PARAMS": str(ROOT / "params.yaml")})
    assert out.returncode == 0, out.stderr
    assert "unexpected argument" not in out.stderr and "  data.synthetic.n_train = " in out.stdout
    assert list(tmp_path.iterdir()) == []  # no data/ or metrics/ written


def test_help_still_answers_when_params_are_broken(tmp_path, monkeypatch):
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(tiny_params_dict(**{"train.clip_low": 1.5})))
    monkeypatch.setenv("AER_PARAMS", str(bad))
    text = stage_help(importlib.import_module("pipeline.stages.train"))
    assert "values unavailable" in text and "train.clip_low" in text and "\n  train\n" in text


def test_aer_params_under_dvc_warns_that_dvc_does_not_track_it(monkeypatch, capsys):
    from pipeline.stages import prepare

    monkeypatch.setenv("AER_PARAMS", "other.yaml")
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert cli_preamble([], prepare.run) is False
    assert "AER_PARAMS" not in capsys.readouterr().err
    monkeypatch.setenv("DVC_STAGE", "prepare")
    assert cli_preamble(["--set", "seed=1"], prepare.run) is False
    err = capsys.readouterr().err
    assert "warning: AER_PARAMS=other.yaml" in err and "dvc.lock" in err


def test_regression_launch_help_was_rejected_as_an_unexpected_argument(tmp_path):
    """dvc.yaml's train command is `python -m pipeline.stages.launch pipeline.stages.train`: its --help
    said 'unexpected argument' and exited 2.  It answers with the launcher and the train stage's help."""
    out = subprocess.run([sys.executable, "-m", "pipeline.stages.launch", "pipeline.stages.train", "--help"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "AER_PARAMS": str(ROOT / "params.yaml")})
    assert out.returncode == 0, out.stderr
    assert "torchrun" in out.stdout and "usage: python -m pipeline.stages.train" in out.stdout
    assert "  train.deepspeed.num_processes = " in out.stdout and list(tmp_path.iterdir()) == []
