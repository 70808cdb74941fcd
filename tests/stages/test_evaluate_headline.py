"""metrics/headline.json: the few numbers `dvc exp show` leads with, from eval results, train metrics and H0."""
from __future__ import annotations

import pytest

from pipeline.config import params_from_dict
from pipeline.stages.evaluate import headline_metrics, headline_path
from pipeline.utils.io import write_json
from tests.conftest import tiny_params_dict


def _metrics(avg: float, passes: dict[int, float]) -> dict:
    return {"avg@n": {"mean": avg, "ci95": [0, 1]},
            **{f"pass@{k}": {"mean": v, "ci95": [0, 1]} for k, v in passes.items()},
            "maj@1": {"mean": 0.0, "ci95": [0, 1]}, "n_problems": 3}


def _params(tmp_path, **extra):
    return params_from_dict(tiny_params_dict(**{"seed": 7, "train.method": "fixed",
                                                "train.metrics_file": str(tmp_path / "train.json"),
                                                "entropy.measure.out": str(tmp_path / "h0.json"),
                                                "eval.metrics_file": str(tmp_path / "m" / "eval.json"), **extra}))


def test_headline_has_method_seed_steps_entropy_ratio_and_largest_k(tmp_path):
    params = _params(tmp_path)
    write_json(tmp_path / "train.json", {"step": 59, "entropy": 0.3, "method": "fixed"})
    write_json(tmp_path / "h0.json", {"h0": 0.6})
    results = {"base": {"synthetic": _metrics(0.1, {1: 0.1, 2: 0.2})},
               "trained": {"synthetic": _metrics(0.4, {1: 0.4, 2: 0.5, 4: 0.7, 16: 0.9}),
                           "amc23": _metrics(0.05, {1: 0.05, 2: 0.08})}}
    h = headline_metrics(params, results)["headline"]
    assert h == {"method": "fixed", "seed": 7, "model": "trained", "steps": 60,
                 "entropy/h0": pytest.approx(0.5),
                 "synthetic": {"avg@n": 0.4, "pass@16": 0.9}, "amc23": {"avg@n": 0.05, "pass@2": 0.08}}
    assert headline_path(params) == tmp_path / "m" / "headline.json"


def test_headline_without_train_metrics_or_trained_model_reports_base_and_nulls(tmp_path):
    h = headline_metrics(_params(tmp_path), {"base": {"synthetic": _metrics(0.2, {1: 0.2, 8: 0.6})}})["headline"]
    assert h["model"] == "base" and h["steps"] is None and h["entropy/h0"] is None
    assert h["synthetic"] == {"avg@n": 0.2, "pass@8": 0.6}


def test_regression_comparison_cells_do_not_overwrite_the_pipelines_headline(tmp_path):
    """sweep_run evaluates each cell with eval.metrics_file inside its run dir; the headline follows it."""
    from pipeline.stages.sweep_run import cell_overrides

    base = params_from_dict(tiny_params_dict())
    cell = params_from_dict(tiny_params_dict(**cell_overrides(base, "aer", 2)))
    assert headline_path(base).as_posix() == "metrics/headline.json"
    assert headline_path(cell).as_posix() == f"{base.compare.runs_dir}/aer-s2/headline.json"
