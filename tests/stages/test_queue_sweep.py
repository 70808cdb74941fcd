"""`make sweep`: one queued DVC experiment per compare.arms x compare.seeds cell, then one queue worker."""
from __future__ import annotations

import os
import subprocess
import sys

import yaml

from pipeline.config import load_params, params_from_dict
from pipeline.stages.queue_sweep import queue_commands
from tests.conftest import ROOT, tiny_params_dict


def test_commands_come_from_compare_arms_and_seeds():
    params = params_from_dict(tiny_params_dict(**{
        "compare.arms": {"grpo": {"method": "none"},
                         "clip_higher": {"method": "none", "overrides": {"train.clip_high": 0.28}}},
        "compare.seeds": [4, 9], "compare.steps": 5, "compare.baseline": "grpo", "compare.phenomena": {}}))
    cmds = queue_commands(params, workers=2)
    assert cmds[-1] == ["dvc", "queue", "start", "-j", "2"]
    assert cmds[0] == ["dvc", "exp", "run", "--queue", "dvc.yaml", "--name", "grpo-s4",
                       "-S", "seed=4", "-S", "train.method=none", "-S", "train.steps=5"]
    assert cmds[3] == ["dvc", "exp", "run", "--queue", "dvc.yaml", "--name", "clip_higher-s9",
                       "-S", "seed=9", "-S", "train.method=none", "-S", "train.clip_high=0.28", "-S", "train.steps=5"]
    assert not any(a.startswith(("train.out_dir", "eval.")) for c in cmds for a in c)  # the pipeline's own paths
    assert len(cmds) == 5


def test_the_committed_params_give_one_cell_per_arm_and_seed():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["compare"]
    names = [c[c.index("--name") + 1] for c in queue_commands(load_params(ROOT / "params.yaml"))[:-1]]
    assert names == [f"{arm}-s{s}" for arm in raw["arms"] for s in raw["seeds"]]


def test_make_sweep_runs_the_queue_builder_and_dry_run_prints_the_commands(tmp_path):
    dry = subprocess.run(["make", "-n", "sweep"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "-m pipeline.stages.queue_sweep" in dry and "MLFLOW_TRACKING_URI" in dry
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict(**{"compare.arms": {"aer": {"method": "aer"}},
                                                          "compare.seeds": [3], "compare.baseline": "aer",
                                                          "compare.phenomena": {}})))
    out = subprocess.run([sys.executable, "-m", "pipeline.stages.queue_sweep", "--dry-run"], cwd=tmp_path,
                         env={**os.environ, "AER_PARAMS": str(params), "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["dvc exp run --queue dvc.yaml --name aer-s3 -S seed=3 -S train.method=aer",
                                       "dvc queue start -j 1"]
