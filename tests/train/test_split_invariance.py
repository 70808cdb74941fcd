"""An update must not depend on how the batch is split: for every registered method, the loss value and
the gradients of one optimizer step are the same for micro-batches of 8 and 32 samples and for 1 and 2
ranks (gloo).  Parametrised over the registry, so a new method is covered automatically."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.rl import REGISTRY, local_comm
from tests.conftest import ROOT
from tests.train.split_case import STRESS, make_batch, step_gradients

pytestmark = pytest.mark.slow
AGG_MODES = ("token-mean", "seq-mean-token-sum-norm")


def rel_diff(a: dict, b: dict) -> float:
    num = sum(float((a[k] - b[k]).double().pow(2).sum()) for k in a)
    den = sum(float(a[k].double().pow(2).sum()) for k in a)
    return (num / den) ** 0.5


@pytest.fixture(scope="module")
def case(tiny_model_dir, tmp_path_factory):
    from pipeline.models.loading import load_policy

    model, tok = load_policy(str(tiny_model_dir))
    batch, olds = make_batch(model, tok)
    single = {(name, micro, agg): step_gradients(model, batch, olds, name, micro, 1, local_comm(), tok.pad_token_id, agg)
              for name in REGISTRY for micro in (8, 32) for agg in AGG_MODES}
    path = tmp_path_factory.mktemp("split") / "batch.pt"
    torch.save({**{f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}, "olds": olds}, path)
    ranks = {}
    for agg in AGG_MODES:
        out = path.with_name(f"ranks-{agg}.pt")
        torchrun = Path(sys.executable).parent / "torchrun"
        proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(ROOT / "tests/train/split_ranks.py"),
                               str(tiny_model_dir), str(path), str(out), agg], cwd=path.parent, capture_output=True,
                              text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-3000:]
        ranks[agg] = torch.load(out, weights_only=True)
    return single, ranks


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_micro_batch_size_changes_nothing(case, name, agg):
    single, _ = case
    (loss8, g8), (loss32, g32) = single[(name, 8, agg)], single[(name, 32, agg)]
    assert loss8 == pytest.approx(loss32, rel=1e-5, abs=1e-7)
    assert any(float(g.abs().sum()) > 0 for g in g32.values())
    assert rel_diff(g32, g8) < 1e-5, name


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_two_ranks_change_nothing(case, name, agg):
    single, ranks = case
    loss1, g1 = single[(name, 32, agg)]
    got = ranks[agg][name]
    assert got["loss"] == pytest.approx(loss1, rel=1e-5, abs=1e-7)
    assert rel_diff(g1, got["grads"]) < 1e-5, name


def test_the_methods_act_in_the_split_case(case):
    """The invariance above is only meaningful if each mechanism changes the gradient: every method's
    gradient differs from GRPO's (KL-Cov, Clip-Cov, SIREN, AEnt, Skywork, AER, the fixed bonus)."""
    single, _ = case
    base = single[("none", 32, "token-mean")][1]
    for name in STRESS:
        assert rel_diff(base, single[(name, 32, "token-mean")][1]) > 1e-4, name
