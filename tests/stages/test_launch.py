"""The train launcher: one process, or torchrun with train.deepspeed.num_processes ranks, inside `dvc repro`."""
from __future__ import annotations

import sys

import pytest
import torch

from pipeline.config import ConfigError, load_params
from pipeline.stages import launch


def _params(tiny_params_file, n):
    return load_params(tiny_params_file(**{"train.deepspeed.num_processes": n, "train.prompts_per_step": 8}))


def test_one_process_runs_the_stage_directly(tiny_params_file, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    cmd = launch.command(_params(tiny_params_file, 1), ["--set", "train.steps=2"], python="/py")
    assert cmd == ["/py", "-m", "pipeline.stages.train", "--set", "train.steps=2"]


def test_several_processes_run_under_torchrun(tiny_params_file, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    cmd = launch.command(_params(tiny_params_file, 4), ["--set", "train.steps=2"], python="/py")
    assert cmd == ["/py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
                   "-m", "pipeline.stages.train", "--set", "train.steps=2"]


def test_already_launched_ranks_do_not_launch_again(tiny_params_file, monkeypatch):
    for key, value in {"RANK": "0", "WORLD_SIZE": "4", "MASTER_ADDR": "h", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    assert launch.command(_params(tiny_params_file, 4), [], python="/py") == ["/py", "-m", "pipeline.stages.train"]


def test_more_processes_than_gpus_fails_before_starting(tiny_params_file, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match="num_processes.*only 2 GPUs"):
        launch.command(_params(tiny_params_file, 4), [])


def test_main_execs_the_command_and_reports_config_errors(tiny_params_file, monkeypatch, capsys):
    params = tiny_params_file(**{"train.deepspeed.num_processes": 2, "train.prompts_per_step": 8})
    monkeypatch.setenv("AER_PARAMS", str(params))
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    execs = []
    monkeypatch.setattr(launch.os, "execv", lambda path, argv: execs.append(argv))
    launch.main(["--set", "train.steps=1"])
    assert execs == [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                      "-m", "pipeline.stages.train", "--set", "train.steps=1"]]
    with pytest.raises(SystemExit) as exc:
        launch.main(["--set", "train.deepspeed.num_processes=3"])
    assert exc.value.code == 2 and "num_processes" in capsys.readouterr().err
