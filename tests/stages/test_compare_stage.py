"""The comparison path end to end: sweep cells (arm x seed) on the tiny model, then the report."""
from __future__ import annotations

import json

import pytest

from pipeline.config import ConfigError, load_params
from pipeline.data import synthetic
from pipeline.eval.compare import beats
from pipeline.utils.io import read_json
from tests.train.helpers import make_workdir

pytestmark = pytest.mark.slow
ARMS = {"grpo": {"method": "none"}, "aer": {"method": "aer"},
        "clip_higher": {"method": "none", "overrides": {"train.clip_high": 0.28}}}


def test_sweep_cells_then_compare_report(tmp_path, monkeypatch, tiny_model_dir):
    from pipeline.stages import compare, evaluate, sweep_run, train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    held_out = synthetic.generate(9, "eval", [1, 2], 2)
    params_path = make_workdir(tmp_path, tiny_model_dir, **{
        "eval.n_samples": 2, "eval.max_new_tokens": 16, "eval.bootstrap": 20, "train.max_new_tokens": 16,
        "eval.variants": [{"temperature": 0.6, "n_samples": 2}], "compare.arms": ARMS, "compare.seeds": [1, 2],
        "compare.steps": 2, "compare.phenomena": {"grpo_collapse": {"arm": "grpo", "threshold": 0.35},
                                                  "aer_tracking": {"arm": "aer", "threshold": 0.1,
                                                                   "reference": "grpo", "ma_threshold": 0.2}}})
    (tmp_path / "data/prepared/eval.jsonl").write_text("".join(json.dumps(p.to_row()) + "\n" for p in held_out))
    base = load_params(params_path)
    evaluate.run(load_params(params_path, overrides={"eval.models": ["base"]}))  # the main pipeline's base eval
    for name in ARMS:
        for seed in (1, 2):
            cell = load_params(params_path, overrides=sweep_run.cell_overrides(base, name, seed))
            assert cell.train.steps == 2 and cell.eval.models == ("trained",)
            train.run(cell)
            evaluate.run(cell)
    assert load_params(params_path, overrides=sweep_run.cell_overrides(base, "clip_higher", 1)).train.clip_high == 0.28
    report = compare.run(base)
    assert set(report["table"]) == set(ARMS) and report["vs_baseline"]["grpo"] == "baseline"
    avg = {n: [read_json(tmp_path / f"runs/{n}-s{s}/eval/trained/synthetic/metrics.json")["avg@n"]["mean"]
               for s in (1, 2)] for n in ARMS}
    want = {True: "better", False: "worse", None: "no difference shown"}[beats(avg["aer"], avg["grpo"])]
    assert report["vs_baseline"]["aer"] == want
    assert "avg@n@T0.6" in report["table"]["aer"] and report["base"]["avg@n"] >= 0
    assert sorted(p["name"] for p in report["phenomena"]) == ["aer_tracking", "grpo_collapse"]
    assert all({"name", "holds", "value", "threshold"} <= set(p) for p in report["phenomena"])
    assert report["labels"]["clip_higher"] == "clip_higher (method none; train.clip_high=0.28)"
    saved = read_json(tmp_path / "reports/comparison.json")
    assert saved["seeds"] == [1, 2] and saved["phenomena"] == json.loads(json.dumps(report["phenomena"]))
    md = (tmp_path / "reports/comparison.md").read_text()
    assert "| aer (method aer) |" in md and "final_entropy_over_h0" in md and "**grpo_collapse**" in md
    for png in ("entropy_vs_step", "coef_vs_step", "accuracy_vs_step", "passk_vs_k"):
        assert (tmp_path / f"reports/{png}.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="no arm named 'sirenn'"):
        sweep_run.cell_overrides(base, "sirenn", 1)


def test_make_compare_pipeline_reads_its_matrix_from_params():
    """Regression: the comparison matrix was a third copy of the method list (comparison/dvc.yaml, params,
    flows).  Now DVC builds it from params.yaml's compare.arms and compare.seeds, and each cell depends on
    its own arm only, so adding a seed or an arm re-runs nothing else."""
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
    cells = {f"comparison/dvc.yaml:run@{arm}-{s}" for arm in params.compare.arms for s in params.compare.seeds}
    assert names == cells | {"comparison/dvc.yaml:compare"}
    ignored = subprocess.run(["git", "check-ignore", "-q", "comparison/dvc.yaml"], cwd=ROOT)
    assert ignored.returncode == 1  # not ignored
    stage = yaml.safe_load((ROOT / "comparison/dvc.yaml").read_text())["stages"]["run"]
    assert stage["matrix"] == {"arm": "${compare.arms}", "seed": "${compare.seeds}"}
    cell_params = stage["params"][0]["params.yaml"]
    assert "compare.arms.${item.arm}" in cell_params and "compare" not in cell_params
    assert "compare.seeds" not in cell_params


def test_regression_an_exploding_arm_flattened_the_collapse_in_the_entropy_plot(monkeypatch, tmp_path):
    """fixed_high's 28 x H0 squeezed every other arm's 1 -> 0.09 collapse onto the axis: a series spanning
    more than a factor 20 is drawn on a log axis; a narrow one stays linear."""
    from pipeline.stages import compare

    monkeypatch.setattr(compare, "save", lambda fig, path: fig.axes[0].get_yscale())
    wide = {"grpo": ([0, 1], [1.0, 0.09]), "fixed_high": ([0, 1], [1.0, 28.0])}
    assert compare._plot(tmp_path / "a.png", wide, "x", "y", "t") == "log"
    assert compare._plot(tmp_path / "b.png", {"grpo": ([0, 1], [1.0, 0.4])}, "x", "y", "t") == "linear"
