"""`make compare`'s driver: arms validated before anything runs, cells in parallel, failures listed."""
from __future__ import annotations

import sys

import yaml

from pipeline.stages import compare_cells
from tests.conftest import tiny_params_dict


def test_cells_run_in_parallel_and_a_failure_keeps_the_others(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compare_cells, "LOGS", tmp_path / "logs")
    ok = [sys.executable, "-c", "import time; time.sleep(1.0)"]
    commands = {"a-s1": ok, "b-s1": [sys.executable, "-c", "raise SystemExit(3)"], "c-s1": ok}
    import time

    start = time.time()
    failed = compare_cells.run_cells(commands, jobs=2)
    assert failed == ["b-s1"]
    assert time.time() - start < 2.5  # two sleeps of 1 s overlapped
    out = capsys.readouterr().out
    assert "b-s1: FAILED (exit 3" in out and out.count(": ok,") == 2
    assert (tmp_path / "logs/a-s1.log").exists()


def test_regression_cells_were_reported_in_submission_order_not_as_they_finished(tmp_path, monkeypatch, capsys):
    """pool.map printed a quick cell only after every slower cell submitted before it had finished."""
    monkeypatch.setattr(compare_cells, "LOGS", tmp_path / "logs")
    commands = {"slow-s1": [sys.executable, "-c", "import time; time.sleep(1.5)"],
                "quick-s1": [sys.executable, "-c", "pass"]}
    assert compare_cells.run_cells(commands, jobs=2) == []
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["[1/2] quick-s1", "[2/2] slow-s1"]
    assert all(line.endswith(" s") and ": ok, " in line for line in lines)


def test_a_bad_arm_fails_before_any_cell_runs(tmp_path, monkeypatch, capsys):
    raw = tiny_params_dict()
    raw["compare"]["arms"]["clip_higher"]["overrides"] = {"train.clip_low": 1.5}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(compare_cells, "run_cells", lambda *a: (_ for _ in ()).throw(AssertionError("ran")))
    assert compare_cells.main(["--jobs", "2"]) == 2
    assert "compare.arms.clip_higher: key 'train.clip_low' = 1.5" in capsys.readouterr().err


def test_an_unknown_phenomenon_fails_before_any_cell_runs(tmp_path, monkeypatch, capsys):
    raw = tiny_params_dict()
    raw["compare"]["phenomena"] = {"entropy_bliss": {"arm": "aer", "threshold": 0.1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(compare_cells, "run_cells", lambda *a: (_ for _ in ()).throw(AssertionError("ran")))
    assert compare_cells.main([]) == 2
    assert "compare.phenomena.entropy_bliss': is not a known phenomenon" in capsys.readouterr().err
