"""Stages `prepare` and `base_model` end to end on tiny params, tracked in a temporary MLflow store."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from pipeline.config import load_params
from pipeline.utils.io import read_jsonl
from tests.conftest import ROOT


@pytest.fixture
def workdir(tmp_path, monkeypatch, tiny_params_file):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def _mlflow_runs(tmp_path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("aer-pipeline")
    return {r.data.tags["stage"]: r for r in client.search_runs([exp.experiment_id])}


@pytest.mark.slow
def test_prepare_and_base_model_end_to_end(workdir, tiny_params_file, shared_benchmarks):
    from pipeline.stages import base_model, prepare

    src = workdir / "extra.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in [
        {"problem": "What is 2+3?", "answer": "5"},
        {"problem": "Broken gold", "answer": "\\frac{"},
        {"problem": "No answer"},
        {"problem": "What is 2+3?", "answer": "5"},
    ]))
    params = load_params(tiny_params_file(**{
        "data.sources": [{"name": "extra", "path": str(src)}],
        "data.decontaminate.benchmarks": [{"name": "aime24", "path": str(shared_benchmarks)}]}))
    m = prepare.run(params)
    assert m["n_bad_rows"] == 2 and m["n_duplicates"] >= 1 and m["train_by_source"]["extra"] == 1
    bad = read_jsonl(workdir / "data/prepared/bad_rows.jsonl")
    assert {(b["file"], b["row"]) for b in bad} == {(str(src), 2), (str(src), 3)}
    assert m["n_eval"] == 16 and len(read_jsonl(workdir / "data/prepared/eval.jsonl")) == 16
    train_texts = {r["problem"] for r in read_jsonl(workdir / "data/prepared/train.jsonl")}
    assert not train_texts & {r["problem"] for r in read_jsonl(workdir / "data/prepared/eval.jsonl")}

    bm = base_model.run(params)
    assert bm["built"] == 1 and (workdir / "models/base/config.json").is_file()
    config = json.loads((workdir / "models/base/config.json").read_text())
    assert config["model_type"] == "qwen2" and config["hidden_size"] // config["num_attention_heads"] >= 32

    runs = _mlflow_runs(workdir)
    assert set(runs) == {"prepare", "base_model"}
    assert runs["prepare"].data.metrics["n_bad_rows"] == 2
    assert runs["base_model"].data.params["model.tiny.hidden_size"] == "64"
    assert "sft_loss" in runs["base_model"].data.metrics and runs["base_model"].info.status == "FINISHED"


def test_invalid_params_fail_before_compute(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["clip_low"] = 1.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    proc = subprocess.run([sys.executable, "-m", "pipeline.stages.prepare"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "key 'train.clip_low' = 1.5: must be <= 1.0" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "m.db").exists()


def test_unreadable_source_names_the_file(workdir, tiny_params_file):
    from pipeline.stages import prepare

    params = load_params(tiny_params_file(**{"data.sources": [{"name": "x", "path": "nope/missing.jsonl"}]}))
    with pytest.raises(SystemExit) as exc:
        prepare.run(params)
    assert exc.value.code == 2
    assert not (workdir / "data/prepared/train.jsonl").exists()
