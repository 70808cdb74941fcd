"""Flows and tasks over a toy DVC project: DVC decides staleness, Prefect only sequences the stages,
streams their output, names task runs by stage, publishes artifacts and keeps one flow run per workspace."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, tiny_params_dict

TOY_DVC = """stages:
  prepare:
    cmd: python -c "import pathlib; p = pathlib.Path('runs.txt'); p.write_text(p.read_text() + 'x' if p.exists() else 'x'); pathlib.Path('out.txt').write_text(open('in.txt').read())"
    deps: [in.txt]
    outs: [out.txt]
"""


@pytest.fixture
def toy_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([str(dvc), "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.yaml").write_text(TOY_DVC)
    (repo / "in.txt").write_text("hello")
    return repo


def _with_params(repo: Path, **overrides) -> dict:
    raw = tiny_params_dict(**overrides)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    return raw


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


def test_regression_stage_output_streams_line_by_line_untruncated_and_interleaved(toy_repo):
    """The task page said "Waiting for logs..." until a stage ended, then showed only the last 4,000
    characters, stdout before stderr."""
    from flows.tasks import repro_stage

    script = ("import sys, time\n"
              "print('first-out'); print('then-err', file=sys.stderr); print('again-out')\n"
              "time.sleep(3)\n"
              "for i in range(3000): print(f'line-{i:05d}')\n")
    (toy_repo / "stage.py").write_text(script)
    (toy_repo / "dvc.yaml").write_text("stages:\n  prepare:\n    cmd: python stage.py\n    deps: [stage.py]\n")
    seen: list[tuple[float, str]] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append((time.monotonic(), record.getMessage()))
    logger = logging.getLogger("flows")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        repro_stage.fn("prepare", str(toy_repo))
    finally:
        logger.removeHandler(handler)
    lines = [m for _, m in seen]
    assert lines.index("first-out") < lines.index("then-err") < lines.index("again-out")  # stderr in order
    assert [m for m in lines if m.startswith("line-")] == [f"line-{i:05d}" for i in range(3000)]  # ~33 kB, all
    at = {m: t for t, m in seen}
    assert at["line-00000"] - at["first-out"] > 2.0  # logged while the stage was still running


def test_pipeline_flow_under_test_harness(toy_repo):
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline_flow

    with prefect_test_harness():
        outputs = pipeline_flow(stages=["prepare"], repo=str(toy_repo))
        again = pipeline_flow(stages=["prepare"], repo=str(toy_repo))
    assert len(outputs) == 1 and (toy_repo / "runs.txt").read_text() == "x"
    assert again == []  # dvc status said up to date: nothing ran


def test_flows_import_without_torch():
    code = ("import sys, flows.pipeline, flows.serve, flows.tasks, flows.reports; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_regression_flow_run_that_executes_nothing_creates_no_parent_run(toy_repo, monkeypatch):
    """Every flow run opened an MLflow parent run, so an up-to-date pipeline left an empty one per run."""
    import mlflow
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline_flow

    _with_params(toy_repo, **{"train.method": "fixed", "seed": 4})
    uri = f"sqlite:///{toy_repo / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    with prefect_test_harness():
        pipeline_flow(stages=["prepare"], repo=str(toy_repo))
        pipeline_flow(stages=["prepare"], repo=str(toy_repo))
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("aer-pipeline").experiment_id])
    assert [r.info.run_name for r in runs] == ["prefect-pipeline-fixed-s4"] and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["train.method"] == "fixed"


def _artifacts_and_task_names(flow_run_id) -> tuple[dict, list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.key: a for a in arts}, sorted(t.name for t in tasks)


def test_flow_names_tasks_by_stage_and_publishes_headline_results_and_mlflow_link(toy_repo, monkeypatch):
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline_flow

    _with_params(toy_repo, **{"compare.arms": {"aer": {"method": "aer"}, "grpo": {"method": "none"}},
                              "compare.seeds": [1, 2]})
    (toy_repo / "metrics").mkdir()
    (toy_repo / "metrics/headline.json").write_text(json.dumps({"headline": {
        "method": "aer", "seed": 1234, "synthetic": {"avg@n": 0.25, "pass@8": 0.5}}}))
    (toy_repo / "reports").mkdir()
    (toy_repo / "reports/comparison.md").write_text("| method | avg@n |\n|---|---|\n| aer | 0.25 |\n")
    for cell, value in (("aer-s1", 0.3), ("aer-s2", 0.2), ("grpo-s1", 0.1)):  # grpo-s2 not finished yet
        (toy_repo / "runs" / cell).mkdir(parents=True)
        (toy_repo / "runs" / cell / "headline.json").write_text(json.dumps({"headline": {
            "method": cell.split("-")[0], "seed": 0, "synthetic": {"avg@n": value}}}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{toy_repo / 'mlflow.db'}")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    with prefect_test_harness():
        state = pipeline_flow(stages=["prepare"], repo=str(toy_repo), return_state=True)
        arts, task_names = _artifacts_and_task_names(state.state_details.flow_run_id)
    assert task_names == ["prepare", "publish-artifacts", "status"]
    assert "| synthetic.avg@n | 0.2500 |" in arts["eval-headline"].data and "| aer | 0.25 |" in arts["eval-headline"].data
    table = json.loads(arts["method-seed-results"].data)
    assert [(r["method"], r["seed"], r["synthetic.avg@n"]) for r in table] == [("aer", 1, 0.3), ("aer", 2, 0.2),
                                                                               ("grpo", 1, 0.1)]
    assert arts["mlflow-run"].data.startswith("[MLflow parent run") and "/#/experiments/" in arts["mlflow-run"].data


def test_regression_overlapping_flow_runs_wait_for_the_workspace_instead_of_failing(toy_repo):
    """Two overlapping runs failed on DVC's lock ("... is busy"); now the second waits for the first."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline_flow

    (toy_repo / "stage.py").write_text("import pathlib, time\n"
                                       "p = pathlib.Path('runs.txt'); p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
                                       "time.sleep(6)\n"
                                       "pathlib.Path('out.txt').write_text('done')\n")
    (toy_repo / "dvc.yaml").write_text("stages:\n  prepare:\n    cmd: python stage.py\n    deps: [stage.py]\n"
                                       "    outs: [out.txt]\n")
    results, errors = {}, []

    def run(label):
        try:
            results[label] = (pipeline_flow(stages=["prepare"], repo=str(toy_repo)), time.monotonic())
        except Exception as exc:  # collected: a lock failure must fail the test, not vanish in a thread
            errors.append(exc)

    with prefect_test_harness():
        first = threading.Thread(target=run, args=("first",))
        second = threading.Thread(target=run, args=("second",))
        first.start()
        time.sleep(3)  # the first run is inside the stage now
        second.start()
        first.join(180)
        second.join(180)
    assert not errors, errors
    assert len(results["first"][0]) == 1 and results["second"][0] == []  # the second found it up to date
    assert (toy_repo / "runs.txt").read_text() == "x"


def test_deployments_run_one_at_a_time_on_an_explicit_time_zone():
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    from flows import serve

    deps = serve.deployments("0 2 * * *", "0 3 * * 6", ".", "Europe/Berlin")
    assert [d.name for d in deps] == ["aer-pipeline-nightly", "aer-sweep-weekly"]
    for dep in deps:
        assert dep.concurrency_limit == 1
        assert dep.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
        assert [s.schedule.timezone for s in dep.schedules] == ["Europe/Berlin"]
    proc = subprocess.run([sys.executable, "-m", "flows.serve", "--cron", "0 2 * * *"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 2 and "--timezone" in proc.stderr  # no silent server-local time zone


def test_regression_sweep_matrix_is_read_from_params_not_copied(tmp_path):
    """The flows kept a third copy of the method list; the sweep now reads compare.arms / compare.seeds."""
    from flows import pipeline, reports

    assert not hasattr(pipeline, "SWEEP_METHODS")
    params = reports.read_params(ROOT)
    cells = reports.sweep_cells(params)
    assert [(n, s) for n, s, _ in cells] == [(name, s) for name in params["compare"]["arms"]
                                              for s in params["compare"]["seeds"]]
    raw = tiny_params_dict(**{"compare.arms": {"clip_higher": {"method": "none", "overrides": {"train.clip_high": 0.3}}},
                              "compare.seeds": [7], "compare.steps": 12})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert reports.sweep_cells(reports.read_params(tmp_path)) == [
        ("clip_higher", 7, {"train.method": "none", "train.clip_high": 0.3, "seed": 7, "train.steps": 12})]
    assert reports.exp_name("clip_higher", 7) == "clip_higher-s7"
    with pytest.raises(ValueError, match=r"no arm named \['nope'\]"):
        reports.sweep_cells(params, names=["nope"])


def test_results_table_falls_back_to_the_comparison_report(tmp_path):
    from flows import reports

    params = {"compare": {"arms": {"aer": {"method": "aer"}}, "seeds": [1], "out_dir": "reports",
                          "runs_dir": "runs"}}
    assert reports.results_rows(tmp_path, params) == [] and reports.headline_markdown(tmp_path, params) is None
    (tmp_path / "reports").mkdir()
    stat = {"ci95": [0.3, 0.5], "n": 2}
    (tmp_path / "reports/comparison.json").write_text(json.dumps({"seeds": [1, 2], "table": {"aer": {
        "avg@n": {**stat, "mean": 0.4}, "avg@n/level1": {**stat, "mean": 0.9}, "pass@2": {**stat, "mean": 0.5},
        "pass@16": {**stat, "mean": 0.7}, "final_entropy_over_h0": {**stat, "mean": 0.95}}}}))
    assert reports.results_rows(tmp_path, params) == [{"method": "aer", "seed": "mean over 1,2", "avg@n": 0.4,
                                                       "pass@16": 0.7, "final_entropy_over_h0": 0.95}]


def test_regression_rerunning_the_sweep_resumes_instead_of_failing_on_existing_experiments(toy_repo):
    """A second sweep run failed at its first cell: "Experiment conflicts with existing experiment"."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import sweep_flow

    _with_params(toy_repo, **{"compare.arms": {"aer": {"method": "aer"}}, "compare.seeds": [1, 2]})
    (toy_repo / "dvc.yaml").write_text(TOY_DVC.replace("    deps: [in.txt]", "    deps: [in.txt]\n    params: [seed]"))
    (toy_repo / ".gitignore").write_text("runs.txt\n")
    subprocess.run("git add -A && git -c user.email=t@t -c user.name=t commit -qm toy", shell=True, cwd=toy_repo,
                   check=True)
    with prefect_test_harness():
        first = sweep_flow(seeds=[1], repo=str(toy_repo))
        second = sweep_flow(repo=str(toy_repo))
    assert [r.get("status") for r in first] == [None]
    assert [(r["seed"], r.get("status")) for r in second] == [(1, "experiment aer-s1 from an earlier run"), (2, None)]
    dvc = str(Path(sys.executable).parent / "dvc")
    names = subprocess.run([dvc, "exp", "list", "--name-only"], cwd=toy_repo, capture_output=True, text=True).stdout
    assert sorted(names.split()) == ["aer-s1", "aer-s2"]


def test_cell_row_without_headline_keeps_the_headline_columns_of_eval_json(tmp_path):
    from flows import reports

    (tmp_path / "eval.json").write_text(json.dumps({"trained": {"synthetic": {
        "avg@n": 0.2, "maj@1": 0.1, "maj@8": 0.3, "pass@1": 0.2, "pass@2": 0.3, "pass@8": 0.6}}}))
    assert reports.cell_row("fixed", 2, tmp_path) == {"method": "fixed", "seed": 2, "synthetic.avg@n": 0.2,
                                                      "synthetic.pass@8": 0.6, "synthetic.maj@8": 0.3}
    assert reports.cell_row("fixed", 2, tmp_path / "missing") is None


def test_regression_prefect_sweep_and_make_sweep_named_experiments_differently():
    """The flow named a cell `clip-cov-s1` while `make sweep` named it `clip_cov-s1`, so neither found the
    other's experiments; both now use `<arm>-s<seed>`."""
    from flows import reports
    from pipeline.config import load_params
    from pipeline.stages.queue_sweep import queue_commands

    params = load_params(ROOT / "params.yaml")
    queued = [cmd[cmd.index("--name") + 1] for cmd in queue_commands(params) if "--name" in cmd]
    flow = [reports.exp_name(name, seed) for name, seed, _ in reports.sweep_cells(reports.read_params(ROOT))]
    assert any("_" in name for name in params.compare.arms)  # the committed arms exercise the difference
    assert flow == queued and "clip_cov-s1" in flow


def test_regression_exp_run_passed_none_as_the_string_none(monkeypatch):
    """`-S key={value}` used str(): None became "None" (a string to DVC) and True "True"; the values are now
    written as `make sweep` writes them."""
    from flows import tasks
    from pipeline.stages.queue_sweep import _value

    seen = []
    monkeypatch.setattr(tasks, "run_dvc", lambda args, repo: seen.append(args) or "")
    overrides = {"train.mini_batch_size": None, "train.scale_by_std": True, "train.clip_high": 0.28,
                 "compare.seeds": [1, 2], "train.method": "clip_cov"}
    tasks.exp_run.fn(overrides, "clip_cov-s1", "repo")
    sets = [a for a in seen[0][seen[0].index("-S"):] if a != "-S"]
    assert sets == ["train.mini_batch_size=null", "train.scale_by_std=true", "train.clip_high=0.28",
                    "compare.seeds=[1, 2]", "train.method=clip_cov"]
    assert sets == [f"{k}={_value(v)}" for k, v in overrides.items()]
