"""Flows and tasks over a toy DVC project: DVC decides staleness, Prefect only sequences the stages."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TOY_DVC = """stages:
  prepare:
    cmd: python -c "import pathlib; p = pathlib.Path('runs.txt'); p.write_text(p.read_text() + 'x' if p.exists() else 'x'); pathlib.Path('out.txt').write_text(open('in.txt').read())"
    deps: [in.txt]
    outs: [out.txt]
"""


@pytest.fixture
def toy_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([str(dvc), "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(TOY_DVC)
    (tmp_path / "in.txt").write_text("hello")
    return tmp_path


def test_repro_task_lets_dvc_skip_up_to_date_stages(toy_repo):
    from flows.tasks import repro_stage

    repro_stage.fn("prepare", str(toy_repo))
    repro_stage.fn("prepare", str(toy_repo))
    assert (toy_repo / "runs.txt").read_text() == "x"  # the second call did not recompute
    (toy_repo / "in.txt").write_text("changed")
    repro_stage.fn("prepare", str(toy_repo))
    assert (toy_repo / "runs.txt").read_text() == "xx" and (toy_repo / "out.txt").read_text() == "changed"


def test_unknown_stage_and_dvc_failure_are_clear(toy_repo):
    from flows.tasks import repro_stage, run_dvc

    with pytest.raises(ValueError, match="unknown stage 'trian'"):
        repro_stage.fn("trian", str(toy_repo))
    with pytest.raises(RuntimeError, match="dvc repro nope failed"):
        run_dvc(["repro", "nope"], str(toy_repo))


def test_training_is_never_retried_blindly():
    from flows.tasks import exp_run, push, repro_stage

    assert repro_stage.retries == 0 and exp_run.retries == 0 and push.retries == 2


def test_pipeline_flow_under_test_harness(toy_repo):
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline_flow

    with prefect_test_harness():
        outputs = pipeline_flow(stages=["prepare"], repo=str(toy_repo))
        again = pipeline_flow(stages=["prepare"], repo=str(toy_repo))
    assert len(outputs) == 1 and (toy_repo / "runs.txt").read_text() == "x"
    assert "didn't change" in again[0] or "up to date" in again[0].lower()


def test_flows_import_without_torch():
    code = "import sys, flows.pipeline, flows.serve, flows.tasks; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_flow_run_opens_and_closes_a_parent_tracking_run(toy_repo, monkeypatch):
    import mlflow
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline_flow

    uri = f"sqlite:///{toy_repo / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    with prefect_test_harness():
        pipeline_flow(stages=["prepare"], repo=str(toy_repo))
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("aer-pipeline").experiment_id])
    assert [r.info.run_name for r in runs] == ["prefect-pipeline"] and runs[0].info.status == "FINISHED"
