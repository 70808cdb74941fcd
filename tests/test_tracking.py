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
    assert runs["prepare"].data.tags["mlflow.parentRunId"] == runs["dvc-repro"].info.run_id
    assert runs["dvc-repro"].info.status == "FINISHED" and runs["dvc-repro"].data.tags["git_sha"]
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
