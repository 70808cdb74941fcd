"""The comparison path end to end: sweep cells (method x seed) on the tiny model, then the report."""
from __future__ import annotations

import json

import pytest

from pipeline.config import ConfigError, load_params
from pipeline.data import synthetic
from pipeline.utils.io import read_json
from tests.train.helpers import make_workdir

pytestmark = pytest.mark.slow


def test_sweep_cells_then_compare_report(tmp_path, monkeypatch, tiny_model_dir):
    from pipeline.stages import compare, evaluate, sweep_run, train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    held_out = synthetic.generate(9, "eval", [1, 2], 2)
    params_path = make_workdir(tmp_path, tiny_model_dir, **{
        "eval.n_samples": 2, "eval.max_new_tokens": 16, "eval.bootstrap": 20, "train.max_new_tokens": 16,
        "compare.methods": [{"name": "grpo", "method": "none"}, {"name": "aer", "method": "aer"},
                            {"name": "clip_higher", "method": "none", "clip_high": 0.28}],
        "compare.seeds": [1, 2], "compare.steps": 1})
    (tmp_path / "data/prepared/eval.jsonl").write_text("".join(json.dumps(p.to_row()) + "\n" for p in held_out))
    base = load_params(params_path)
    for name in ("grpo", "aer", "clip_higher"):
        for seed in (1, 2):
            cell = load_params(params_path, overrides=sweep_run.cell_overrides(base, name, seed))
            assert cell.train.steps == 1 and cell.eval.models == ("trained",)
            train.run(cell)
            evaluate.run(cell)
    assert load_params(params_path, overrides=sweep_run.cell_overrides(base, "clip_higher", 1)).train.clip_high == 0.28
    report = compare.run(base)
    assert set(report["table"]) == {"grpo", "aer", "clip_higher"} and report["vs_grpo"]["grpo"] == "baseline"
    assert report["vs_grpo"]["aer"] in ("better", "worse", "no difference shown")
    assert read_json(tmp_path / "reports/comparison.json")["seeds"] == [1, 2]
    md = (tmp_path / "reports/comparison.md").read_text()
    assert "| aer |" in md and "final_entropy_over_h0" in md
    for png in ("entropy_vs_step", "coef_vs_step", "accuracy_vs_step", "passk_vs_k"):
        assert (tmp_path / f"reports/{png}.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="no entry named 'sirenn'"):
        sweep_run.cell_overrides(base, "sirenn", 1)


def test_make_compare_pipeline_is_readable_by_dvc_and_mirrors_params():
    """Regression: `make compare` copied a template to a git-ignored comparison/dvc.yaml, and DVC refuses
    git-ignored pipeline files ("bad DVC file name ... is git-ignored"), so the comparison never ran."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from tests.conftest import ROOT

    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), "stage", "list", "comparison/dvc.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    params = load_params(ROOT / "params.yaml")
    cells = {f"comparison/dvc.yaml:run@{m.name}-{s}" for m in params.compare.methods for s in params.compare.seeds}
    assert names == cells | {"comparison/dvc.yaml:compare"}
    ignored = subprocess.run(["git", "check-ignore", "-q", "comparison/dvc.yaml"], cwd=ROOT)
    assert ignored.returncode == 1  # not ignored
    assert yaml.safe_load((ROOT / "comparison/dvc.yaml").read_text())["stages"]["run"]["matrix"]["seed"] == \
        list(params.compare.seeds)
