"""Stage `compare`: the method x seed runs -> reports/comparison.{md,json}, curves, MLflow parent run.

Reads `<compare.runs_dir>/<name>-s<seed>/` for every compared method and seed (written by
`pipeline.stages.sweep_run`), the initial entropy H0, and writes the table with CIs over seeds, honest
better/worse/no-difference verdicts against GRPO, and PNG curves (entropy with AER's target band,
coefficient, accuracy, pass@k vs k).  MLflow gets a parent run with one nested run per method.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.eval.compare import beats, load_run, mean_curve, render_markdown, summarise_method
from pipeline.stages.common import main_guard, numeric_metrics, stage_run
from pipeline.tracking import start_run
from pipeline.utils.plots import figure, save
from pipeline.utils.io import atomic_open, read_json, write_json


def _plot(path: Path, series: dict, xlabel: str, ylabel: str, hline=None) -> Path:
    fig, ax = figure((6.5, 3.6))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, marker="o" if len(x) < 12 else None)
    if hline is not None:
        ax.axhspan(hline * 0.9, hline * 1.1, color="green", alpha=0.15, label="AER target +-10%")
        ax.axhline(hline, color="green", linestyle="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return save(fig, path)


def plots(out: Path, runs: dict, target) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    k_series = {}
    for name, rs in runs.items():
        ks = sorted(int(k.split("@")[1]) for k in rs[0]["eval"] if k.startswith("pass@"))
        k_series[name] = (ks, [sum(r["eval"][f"pass@{k}"]["mean"] for r in rs) / len(rs) for k in ks])
    return [_plot(out / "entropy_vs_step.png", {n: mean_curve(rs, "entropy") for n, rs in runs.items()},
                  "step", "token entropy (nats)", target),
            _plot(out / "coef_vs_step.png", {n: mean_curve(rs, "reg/coef") for n, rs in runs.items()}, "step",
                  "entropy coefficient"),
            _plot(out / "accuracy_vs_step.png", {n: mean_curve(rs, "accuracy") for n, rs in runs.items()}, "step",
                  "rollout accuracy"),
            _plot(out / "passk_vs_k.png", k_series, "k", "held-out pass@k")]


def run(params: Params) -> dict:
    c = params.compare
    benchmark = params.eval.benchmarks[0].name
    h0 = read_json(params.entropy.measure.out)["h0"]
    runs = {m.name: [load_run(Path(c.runs_dir) / f"{m.name}-s{s}", benchmark) for s in c.seeds] for m in c.methods}
    table = {name: summarise_method(rs, h0) for name, rs in runs.items()}
    base = [r["eval"]["avg@n"]["mean"] for r in runs.get("grpo", [])]
    verdicts = {n: "baseline" if n == "grpo" else beats([r["eval"]["avg@n"]["mean"] for r in rs], base)
                for n, rs in runs.items()}
    aer_target = next((r["curve"][-1].get("reg/target") for r in runs.get("aer", [])), None)
    out = Path(c.out_dir)
    report = {"h0": h0, "benchmark": benchmark, "seeds": list(c.seeds), "table": table,
              "vs_grpo": {n: v if v == "baseline" else {True: "better", False: "worse", None: "no difference shown"}[v]
                          for n, v in verdicts.items()}}
    write_json(out / "comparison.json", report)
    with atomic_open(out / "comparison.md") as fh:
        fh.write(render_markdown(table, verdicts, h0, benchmark))
    pngs = plots(out, runs, aer_target)
    with stage_run("compare", params) as parent:
        for path in [out / "comparison.md", out / "comparison.json", *pngs]:
            parent.log_artifact(path)
        for name, row in table.items():
            with start_run(f"compare/{name}", experiment=params.tracking.experiment, uri=params.tracking.uri,
                           enabled=params.tracking.enabled, run_name=name) as child:
                child.log_metrics(numeric_metrics({k: v["mean"] for k, v in row.items() if v["mean"] is not None}))
    print((out / "comparison.md").read_text())
    return report


if __name__ == "__main__":
    main_guard(run, "compare")
