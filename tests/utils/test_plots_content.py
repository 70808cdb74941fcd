"""What the stage PNGs show: method and seed in the title, axis labels with units, H0, the target and its band,
and in the difficulty histogram the dropped prompts and the bucket edges.  The figures are captured as
they are saved, so the test reads the drawn artists, not pixels."""
from __future__ import annotations

import pytest

from pipeline.utils import plots


@pytest.fixture
def saved(monkeypatch):
    figures = {}
    original = plots.save

    def capture(fig, path, dpi=100):
        ax = fig.axes[0]
        figures[path.name] = {"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                              "legend": [t.get_text() for t in ax.get_legend().get_texts()],
                              "hlines": sorted(ln.get_ydata()[0] for ln in ax.lines if len(set(ln.get_ydata())) == 1),
                              "vlines": sorted(ln.get_xdata()[0] for ln in ax.lines if len(set(ln.get_xdata())) == 1),
                              "notes": [t.get_text() for t in ax.texts]}
        return original(fig, path, dpi)

    monkeypatch.setattr(plots, "save", capture)
    return figures


def test_train_curves_name_method_seed_units_h0_and_target(tmp_path, saved):
    from pipeline.train.telemetry import StepLog

    log = StepLog(tmp_path / "train.csv")
    for step in range(5):
        log.append({"step": step, "entropy": 0.5 - 0.01 * step, "reg/coef": 0.001 * step})
    paths = log.plot(tmp_path / "train", 0.2, None, method="aer", seed=3, h0=0.5)
    assert [p.name for p in paths] == ["entropy.png", "coef.png"] and all(p.stat().st_size > 0 for p in paths)
    ent, coef = saved["entropy.png"], saved["coef.png"]
    assert "aer" in ent["title"] and "seed 3" in ent["title"] and "aer" in coef["title"] and "seed 3" in coef["title"]
    assert ent["ylabel"] == "mean token entropy (nats/token)" and ent["xlabel"] == "training step"
    assert "unitless" in coef["ylabel"]
    assert ent["hlines"] == [pytest.approx(0.2), pytest.approx(0.5)]  # target and H0
    assert "H0 = 0.5 (base model)" in ent["legend"] and "target +-10%" in ent["legend"]
    assert not any("H0" in t for t in coef["legend"])  # H0 belongs to entropy only


def test_a_method_band_replaces_the_default_band(tmp_path, saved):
    from pipeline.train.telemetry import StepLog

    log = StepLog(tmp_path / "train.csv")
    log.append({"step": 0, "entropy": 0.3, "reg/coef": 0.0})
    log.plot(tmp_path / "train", None, (0.15, 0.24), method="aent", seed=1, h0=0.3)
    assert "target band [0.15, 0.24]" in saved["entropy.png"]["legend"]
    assert not any("10%" in t for t in saved["entropy.png"]["legend"])


def test_difficulty_histogram_marks_dropped_prompts_and_bucket_edges(tmp_path, saved):
    from pipeline.stages.difficulty import histogram_png

    rows = [{"n": 8, "correct": c, "pass_rate": c / 8, "kept": 0 < c < 8} for c in (0, 0, 0, 1, 2, 4, 6, 8)]
    histogram_png(rows, tmp_path / "h.png", edges=(0.25, 0.5, 0.75), seed=5, model="models/base")
    fig = saved["h.png"]
    assert "seed 5" in fig["title"] and "models/base" in fig["title"] and "n = 8" in fig["title"]
    assert "fraction" in fig["xlabel"] and "count" in fig["ylabel"]
    assert "dropped: never solved (3)" in fig["legend"] and "dropped: always solved (1)" in fig["legend"]
    # pass rate 2/8 = 0.25 opens the 0.25-0.50 bucket: the edge is drawn between the bars of 1/8 and 2/8
    assert fig["vlines"] == [pytest.approx(1.5 / 8), pytest.approx(3.5 / 8), pytest.approx(5.5 / 8)]
    assert fig["notes"] == ["0.00-0.25", "0.25-0.50", "0.50-0.75", "0.75-1.00"]
