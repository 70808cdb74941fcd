"""Tracking: a real MLflow server on loopback (metrics and artifacts checked over REST) and the
fallback when the server is down (the run continues, warns, and writes locally)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline import tracking
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_run_continues_with_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.warns(RuntimeWarning, match="unreachable"):
        with tracking.start_run("prepare", uri=url) as t:
            t.log_params({"a": 1})
            t.log_metrics({"loss": 0.5}, step=3)
            (tmp_path / "out.txt").write_text("x")
            t.log_artifact(tmp_path / "out.txt")
    events = [json.loads(line) for f in (tmp_path / ".tracking_fallback").rglob("events.jsonl") for line in open(f)]
    assert {"kind": "metrics", "step": 3, "metrics": {"loss": 0.5}}.items() <= events[1].items()


def test_nested_runs_and_sanitised_names(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with tracking.start_run("parent", uri=uri) as parent:
        with tracking.start_run("child", uri=uri) as child:
            child.log_metrics({"acc/0.00-0.25 (hard)": 1.0})
    client = mlflow.MlflowClient(uri)
    run = client.get_run(child.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert run.data.metrics == {"acc/0.00-0.25 _hard_": 1.0}
    assert client.get_run(parent.run_id).info.status == "FINISHED"


@contextlib.contextmanager
def _mlflow_server(tmp_path: Path):
    """A real `mlflow server` on loopback (its own process group); yields (url, process)."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    server = subprocess.Popen([mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{tmp_path / 'srv.db'}",
                               "--artifacts-destination", str(tmp_path / "artifacts")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except Exception:
                assert server.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        yield url, server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGCONT)
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.server
@pytest.mark.slow
def test_real_mlflow_server_receives_a_stage_run(tmp_path):
    with _mlflow_server(tmp_path) as (url, server):
        art = tmp_path / "metrics.json"
        art.write_text('{"n": 1}')
        with tracking.start_run("prepare", uri=url) as t:
            t.log_params({"seed": 1})
            t.log_metrics({"n_train": 42.0}, step=0)
            t.log_artifact(art)
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/runs/get?run_id={t.run_id}", timeout=10) as r:
            run = json.load(r)["run"]
        assert {"key": "n_train", "value": 42.0} in [{k: m[k] for k in ("key", "value")} for m in run["data"]["metrics"]]
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/artifacts/list?run_id={t.run_id}", timeout=10) as r:
            files = [f["path"] for f in json.load(r).get("files", [])]
        assert "metrics.json" in files
    assert server.poll() is not None


_OUTAGE_SCRIPT = """
import json, sys, time
from pathlib import Path
import mlflow
from pipeline import tracking
from tests.conftest import ROOT
with tracking.start_run("train", uri=sys.argv[1]) as t:
    t.log_params({"seed": 1})
    t.log_metrics({"loss": 0.0}, step=0)
    Path("ready").write_text("1")
    while not Path("down").exists():
        time.sleep(0.05)
    times = []
    for step in range(1, 6):
        start = time.monotonic()
        t.log_metrics({"loss": float(step)}, step=step)
        times.append(time.monotonic() - start)
    Path("times.json").write_text(json.dumps(times))
Path("after.json").write_text(json.dumps({"active": mlflow.active_run() is not None}))
"""


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("outage", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_regression_tracker_outage_stalls_steps_and_changes_exit_code(tmp_path, outage):
    """Regression (issue 13 item 2): with the server dead each call blocked ~255 s in MLflow's retries, and
    with retries off the unguarded end_run made the stage exit 1.  Killed (connection refused) or hung
    (accepts, never answers): one step waits at most the 5 s timeout, later steps not at all, one warning
    says where the metrics went, and the process exits 0."""
    (tmp_path / "job").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    env.update(PYTHONPATH=str(ROOT))
    with _mlflow_server(tmp_path) as (url, server):
        proc = subprocess.Popen([sys.executable, "-c", _OUTAGE_SCRIPT, url], cwd=tmp_path / "job", env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (tmp_path / "job/ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        os.killpg(server.pid, outage)
        (tmp_path / "job/down").write_text("1")
        _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, stderr[-3000:]
    times = json.loads((tmp_path / "job/times.json").read_text())
    assert times[0] < 8 and max(times[1:]) < 0.5, times
    assert stderr.count("no further calls go to it") == 1, stderr[-3000:]
    (events,) = (tmp_path / "job/.tracking_fallback").rglob("events.jsonl")
    assert str(events.relative_to(tmp_path / "job")) in stderr
    logged = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["step"] for e in logged if e["kind"] == "metrics"] == [1, 2, 3, 4, 5]
    assert json.loads((tmp_path / "job/after.json").read_text()) == {"active": False}


def test_regression_credentials_in_tracking_uri_are_printed_and_stored(tmp_path, monkeypatch):
    """Regression (issue 13 item 6): the password in http://user:pass@host was printed in the unreachable
    warning and saved as a param in .tracking_fallback/ (and would reach MLflow's params too)."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    secret = f"http://alice:s3cret@127.0.0.1:{_free_port()}"
    assert tracking.redact(f"see {secret}/api and postgresql://u:p@db/x") == (
        f"see http://***@127.0.0.1:{secret.rsplit(':', 1)[1]}/api and postgresql://***@db/x")
    assert tracking.redact("sqlite:////tmp/m.db") == "sqlite:////tmp/m.db" and tracking.redact(3) == 3
    with pytest.warns(RuntimeWarning) as record:
        with tracking.start_run("prepare", uri=secret) as t:
            t.log_params({"tracking.uri": secret})
            t.set_tags({"uri": secret})
    assert record and not any("s3cret" in str(w.message) for w in record)
    stored = "".join(f.read_text() for f in (tmp_path / ".tracking_fallback").rglob("*") if f.is_file())
    assert "s3cret" not in stored and "http://***@127.0.0.1" in stored
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with tracking.start_run("prepare", uri=uri) as t:
        t.log_params({"tracking.uri": secret})
    assert mlflow.MlflowClient(uri).get_run(t.run_id).data.params["tracking.uri"].startswith("http://***@")


def test_regression_tracking_disabled_still_creates_a_fallback_dir(tmp_path, monkeypatch):
    from pipeline.config import load_params
    from pipeline.stages.common import stage_run
    from tests.conftest import tiny_params_dict

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(__import__("yaml").safe_dump(tiny_params_dict(**{"tracking.enabled": False})))
    with stage_run("prepare", load_params("params.yaml")) as t:
        t.log_metrics({"x": 1.0}, step=0)
        t.log_artifact(tmp_path / "params.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_wrap_nests_a_subprocess_stage_run_under_a_parent(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    child = ("from pipeline import tracking\n"
             "with tracking.start_run('prepare') as t:\n"
             "    t.log_metrics({'x': 1.0})\n")
    rc = tracking.main(["wrap", "dvc-repro", "--", sys.executable, "-c", child])
    assert rc == 0
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("aer-pipeline")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    parent = runs.pop("prepare").data.tags["mlflow.parentRunId"]
    (wrapper,) = runs.values()
    assert wrapper.info.run_id == parent and wrapper.info.run_name.startswith("dvc-repro-")
    assert wrapper.info.status == "FINISHED" and wrapper.data.tags["git_sha"]
    assert tracking.main(["wrap", "failing", "--", sys.executable, "-c", "raise SystemExit(3)"]) == 3


def test_stage_runs_under_dvc_repro_log_the_dvc_stage_hash_and_git_sha(tmp_path):
    """The hash is DVC's view of the stage's inputs: equal for the same inputs, new when a dependency or a
    tracked param changes, and logged as an MLflow param of the stage run beside the git SHA."""
    import mlflow
    import yaml

    from tests.conftest import ROOT, tiny_params_dict

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    raw = tiny_params_dict(**{"tracking.uri": uri})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "input.txt").write_text("a")
    (tmp_path / "stage.py").write_text(
        "from pathlib import Path\n"
        "from pipeline import tracking\n"
        "from pipeline.config import load_params\n"
        "from pipeline.stages.common import stage_run\n"
        "with stage_run('s', load_params('params.yaml')) as t:\n"
        "    Path('out.txt').write_text(t.run_id + ' ' + tracking.dvc_stage_hash())\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": "python stage.py", "deps": ["input.txt"], "params": ["seed"], "outs": ["out.txt"]}}}))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DVC_STAGE", None)

    def repro() -> tuple[str, str]:
        proc = subprocess.run([str(bin_dir / "dvc"), "repro", "--no-commit"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
        run_id, digest = (tmp_path / "out.txt").read_text().split()
        return run_id, digest

    assert subprocess.run([str(bin_dir / "dvc"), "init", "--no-scm", "-q"], cwd=tmp_path, env=env).returncode == 0
    run_id, first = repro()
    assert len(first) == 32
    logged = mlflow.MlflowClient(uri).get_run(run_id).data.params
    assert logged["dvc_stage_hash"] == first and logged["git_sha"] and logged["seed"] == str(raw["seed"])

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert tracking.dvc_stage_hash("s") == first  # same inputs, same hash, outside the run too
        assert tracking.dvc_stage_hash() is None  # not under dvc repro: no hash
    finally:
        os.chdir(cwd)
    (tmp_path / "input.txt").write_text("b")
    _, changed_dep = repro()
    raw["seed"] += 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    _, changed_param = repro()
    assert len({first, changed_dep, changed_param}) == 3


# --- What a researcher sees in MLflow (issue 14, items 1-4) ---------------------------------------------

def _client(uri):
    import mlflow

    return mlflow.MlflowClient(uri)


def _artifacts(client, run_id, path=None) -> list[str]:
    out = []
    for f in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


def _params(tmp_path, **overrides):
    from pipeline.config import params_from_dict
    from tests.conftest import tiny_params_dict

    return params_from_dict(tiny_params_dict(**overrides))


def test_regression_runs_are_named_by_stage_method_seed_and_tagged(tmp_path, monkeypatch):
    """Runs were all named "train" or "evaluate", so aer and fixed runs looked alike in the compare view."""
    from pipeline.stages.common import stage_run

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    params = _params(tmp_path, **{"tracking.uri": uri, "train.method": "fixed", "seed": 7})
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    with stage_run("train", params) as plain:
        pass
    monkeypatch.setenv("DVC_EXP_NAME", "lr-sweep-3")
    with stage_run("evaluate", params) as in_exp:
        pass
    client = _client(uri)
    first, second = client.get_run(plain.run_id), client.get_run(in_exp.run_id)
    assert first.info.run_name == "train-fixed-s7" and second.info.run_name == "evaluate-fixed-s7-lr-sweep-3"
    assert {k: first.data.tags[k] for k in ("method", "seed", "profile", "experiment")} == {
        "method": "fixed", "seed": "7", "profile": "embedded", "experiment": "workspace"}
    assert second.data.tags["experiment"] == "lr-sweep-3"


def test_stage_runs_log_the_datasets_they_read_as_inputs(tmp_path, monkeypatch):
    from pipeline.stages.common import stage_run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/train.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n\n{"id": "c"}\n')
    (tmp_path / "data/prepared/eval.jsonl").write_text('{"id": "e"}\n')
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    params = _params(tmp_path, **{"tracking.uri": uri, "data.out_dir": "data/prepared",
                                  "eval.benchmarks": [{"name": "synthetic"}, {"name": "math500"}]})
    with stage_run("train", params) as train_run:
        pass
    with stage_run("evaluate", params) as eval_run:
        pass
    client = _client(uri)
    (train_in,) = client.get_run(train_run.run_id).inputs.dataset_inputs
    tags = {t.key: t.value for t in train_in.tags}
    assert train_in.dataset.name == "train" and tags["mlflow.data.context"] == "training"
    assert train_in.dataset.digest == tracking.file_md5(tmp_path / "data/prepared/train.jsonl") and tags["rows"] == "3"
    assert json.loads(train_in.dataset.source) == {"uri": "data/prepared/train.jsonl"}  # relative: relocatable
    evals = {d.dataset.name: d.dataset for d in client.get_run(eval_run.run_id).inputs.dataset_inputs}
    assert set(evals) == {"synthetic", "math500"}
    assert evals["synthetic"].source_type == "local" and evals["math500"].source_type == "hugging_face"
    assert json.loads(evals["math500"].source)["path"] == "HuggingFaceH4/MATH-500"


def test_regression_parent_run_uses_tracking_settings_and_carries_config_and_headline(tmp_path, monkeypatch):
    """Parent runs held no params or metrics, and `open_parent` ignored tracking.experiment / tracking.uri,
    so the stage runs (which honour them) landed in another experiment than their parent."""
    import yaml

    from tests.conftest import ROOT, tiny_params_dict

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AER_PARAMS", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    uri = f"sqlite:///{tmp_path / 'custom.db'}"
    raw = tiny_params_dict(**{"tracking.uri": uri, "tracking.experiment": "my-study", "train.method": "aer",
                              "seed": 5})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/eval.json").write_text(json.dumps({"trained": {"synthetic": {"avg@n": 0.25}}}))
    (tmp_path / "metrics/train.json").write_text(json.dumps({"entropy": 0.5, "method": "aer"}))
    child = ("from pipeline.config import load_params\n"
             "from pipeline.stages.common import stage_run\n"
             "with stage_run('train', load_params()) as t:\n"
             "    t.log_metrics({'x': 1.0})\n")
    assert tracking.main(["wrap", "dvc-repro", "--", sys.executable, "-c", child]) == 0
    client = _client(uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("my-study").experiment_id])}
    assert set(runs) == {"dvc-repro-aer-s5", "train-aer-s5"}
    parent = runs["dvc-repro-aer-s5"]
    assert runs["train-aer-s5"].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.params["train.method"] == "aer" and parent.data.params["tracking.experiment"] == "my-study"
    assert parent.data.metrics == {"eval.trained.synthetic.avg_n": 0.25, "train.entropy": 0.5}  # no headline file
    assert parent.data.tags["train.method"] == "aer" and parent.data.tags["method"] == "aer"

    (tmp_path / "metrics/headline.json").write_text(json.dumps({"headline": {
        "method": "aer", "seed": 5, "steps": 60, "entropy/h0": 0.9, "synthetic": {"avg@n": 0.3, "pass@8": 0.6}}}))
    assert tracking.main(["wrap", "again", "--", sys.executable, "-c", "pass"]) == 0
    (again,) = client.search_runs([parent.info.experiment_id], "attributes.run_name = 'again-aer-s5'")
    assert again.data.metrics == {"headline.seed": 5.0, "headline.steps": 60.0, "headline.entropy/h0": 0.9,
                                  "headline.synthetic.avg_n": 0.3, "headline.synthetic.pass_8": 0.6}
    assert again.data.tags["headline.method"] == "aer"
    assert tracking.main(["wrap", "broken", "--", sys.executable, "-c", "raise SystemExit(1)"]) == 1
    (broken,) = client.search_runs([parent.info.experiment_id], "attributes.run_name = 'broken-aer-s5'")
    assert broken.info.status == "FAILED" and broken.data.metrics == {}  # a failed run claims no results
    assert tracking.run_url(again.info.run_id) == (
        f"http://127.0.0.1:5000/#/experiments/{again.info.experiment_id}/runs/{again.info.run_id}")


def test_parent_run_is_skipped_when_tracking_is_disabled(tmp_path, monkeypatch):
    import yaml

    from tests.conftest import tiny_params_dict

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict(**{"tracking.enabled": False})))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    assert tracking.open_parent("x") is None and not (tmp_path / "m.db").exists()


def test_regression_comparison_child_runs_log_their_arm(tmp_path):
    """Comparison child runs logged metrics but no params, so nothing said what an arm was."""
    from pipeline.stages.compare import arm_run_params

    params = _params(tmp_path, **{"compare.steps": 5, "compare.seeds": [1, 2]})
    assert arm_run_params(params, "clip_higher") == {"arm": "clip_higher", "train.method": "none",
                                                     "train.clip_high": 0.28, "train.steps": 5, "seeds": [1, 2]}
    assert arm_run_params(params, "aer") == {"arm": "aer", "train.method": "aer", "train.steps": 5, "seeds": [1, 2]}


def test_entropy_and_its_target_share_one_chart(tmp_path):
    """MLflow's default view draws each metric alone; the run carries a chart with both, redrawn every
    `chart_every` steps, and none for a method without a target."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    drawn = []
    with tracking.start_run("train", uri=uri, chart_every=4) as aer:
        original = aer.draw_charts
        aer.draw_charts = lambda: (drawn.append(len(aer._series["entropy"])), original())[1]
        for step in range(10):
            aer.log_metrics({"entropy": 1.0 - 0.05 * step, "reg/target": 0.6}, step=step)
    with tracking.start_run("train", uri=uri, chart_every=4) as grpo:
        for step in range(10):
            grpo.log_metrics({"entropy": 1.0 - 0.05 * step}, step=step)
    client = _client(uri)
    assert drawn == [4, 8, 10]  # steps 3 and 7, then the end of the run
    png = Path(client.download_artifacts(aer.run_id, "charts/entropy_vs_target.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert _artifacts(client, grpo.run_id) == []


def test_system_metrics_are_sampled(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    mlflow.set_system_metrics_sampling_interval(1)
    try:
        with tracking.start_run("train", uri=uri, system_metrics=True) as t:
            time.sleep(3)
    finally:
        mlflow.set_system_metrics_sampling_interval(None)
    keys = set(_client(uri).get_run(t.run_id).data.metrics)
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= keys


def test_regression_large_model_is_logged_as_a_dvc_reference_not_a_copy(tmp_path, monkeypatch):
    """Every train run copied the whole model into MLflow: multi-GB per run for the GPU profile."""
    import hashlib

    model = tmp_path / "models/trained/final"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"w" * 3000)
    (model / "config.json").write_text("{}")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with tracking.start_run("train", uri=uri) as small:
        small.log_model(model, "final_model")
    from pipeline import tracking_support

    monkeypatch.setattr(tracking_support, "MODEL_COPY_LIMIT_MB", 0.001)  # ~1 kB: the 3 kB model is "large"
    with tracking.start_run("train", uri=uri) as large:
        large.log_model(model, "final_model")
    client = _client(uri)
    assert sorted(_artifacts(client, small.run_id)) == ["final_model/config.json", "final_model/model.safetensors"]
    assert _artifacts(client, large.run_id) == ["final_model.ref.json"]
    ref = json.loads(Path(client.download_artifacts(large.run_id, "final_model.ref.json", str(tmp_path))).read_text())
    assert ref["bytes"] == 3002 and ref["files"]["model.safetensors"] == {
        "md5": hashlib.md5(b"w" * 3000).hexdigest(), "size": 3000}


def test_sampled_completions_are_logged_as_a_table(tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"step": i, "reward": i % 2, "completion": f"c{i}"}) + "\n"
                               for i in range(1200)))
    rows = tracking.sample_rows(samples, max_rows=500)
    assert len(rows) == 400 and rows[0]["step"] == 0 and rows[-1]["step"] == 1197  # every 3rd row, all steps
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with tracking.start_run("train", uri=uri) as t:
        t.log_table(rows, "samples/train_completions.json")
    table = json.loads(Path(_client(uri).download_artifacts(t.run_id, "samples/train_completions.json",
                                                            str(tmp_path))).read_text())
    assert table["columns"] == ["step", "reward", "completion"] and len(table["data"]) == 400
    assert table["data"][1] == [3, 1, "c3"]


def test_regression_moved_or_copied_clone_uses_its_own_artifact_folder(tmp_path, monkeypatch):
    """mlflow.db stores absolute artifact paths, so a copied clone wrote artifacts into the original clone
    and a moved one could not read its own."""
    import shutil

    original = tmp_path / "clone"
    original.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(original)
    (original / "a.txt").write_text("first")
    with tracking.start_run("prepare") as first:
        first.log_artifact(original / "a.txt")
    assert (original / "mlflow.db").is_file() and list((original / "mlartifacts").rglob("a.txt"))

    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    monkeypatch.chdir(copy)
    (copy / "b.txt").write_text("second")
    with pytest.warns(RuntimeWarning, match="moved or copied"):
        with tracking.start_run("prepare") as second:
            second.log_artifact(copy / "b.txt")
    assert not list((original / "mlartifacts").rglob("b.txt"))  # the original clone is untouched
    assert list((copy / "mlartifacts").rglob("b.txt"))
    shutil.rmtree(original)  # as after a move: the copy must still read its first run's artifact
    client = _client(tracking.default_uri())
    got = client.download_artifacts(first.run_id, "a.txt", str(tmp_path))
    assert Path(got).read_text() == "first"
    assert client.get_run(first.run_id).info.artifact_uri.startswith((copy / "mlartifacts").as_uri())
    assert tracking.relocate_store(copy / "mlflow.db", copy) == {}  # idempotent


@pytest.mark.slow
def test_train_and_evaluate_stage_runs_as_a_researcher_sees_them(tmp_path, monkeypatch, tiny_model_dir):
    """The real stages on the tiny model: named runs, the entropy/target chart, the completions tables,
    the inputs, and the (small) model copied into the run."""
    from pipeline.config import load_params
    from pipeline.stages import evaluate, train
    from tests.train.helpers import make_workdir

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    params = load_params(make_workdir(tmp_path, tiny_model_dir, **{
        "tracking.uri": uri, "train.method": "aer", "seed": 3, "eval.models": ["trained"], "eval.n_samples": 2,
        "eval.max_new_tokens": 16, "eval.bootstrap": 20}))
    (tmp_path / "data/prepared/eval.jsonl").write_text((tmp_path / "data/prepared/train.jsonl").read_text())
    train.run(params)
    evaluate.run(params)
    client = _client(uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("aer-pipeline").experiment_id])}
    assert set(runs) == {"train-aer-s3", "evaluate-aer-s3"}
    train_files = _artifacts(client, runs["train-aer-s3"].info.run_id)
    assert {"charts/entropy_vs_target.png", "samples/train_completions.json", "final_model/config.json"} <= set(train_files)
    table = json.loads(Path(client.download_artifacts(runs["train-aer-s3"].info.run_id, "samples/train_completions.json",
                                                      str(tmp_path / "dl"))).read_text())
    assert {"step", "completion", "reward"} <= set(table["columns"]) and table["data"]
    assert "samples/trained_synthetic.json" in _artifacts(client, runs["evaluate-aer-s3"].info.run_id)
    assert [d.dataset.name for d in runs["train-aer-s3"].inputs.dataset_inputs] == ["train"]
