"""Stage `compare`: the arm x seed runs -> reports/comparison.{md,json}, curves, MLflow parent run.

Reads `<compare.runs_dir>/<arm>-s<seed>/` for every arm and seed (written by `pipeline.stages.sweep_run`),
the initial entropy H0 and the base model's evaluation from the main pipeline, and writes the table with
CIs over seeds, honest better/worse/no-difference verdicts against the baseline arm, the testbed's
phenomena (`compare.phenomena`, judged on every seed) and PNG curves (entropy / H0 with every target band,
coefficient, accuracy, pass@k vs k).  MLflow gets a parent run with one nested run per arm.
"""
from __future__ import annotations

import math
from pathlib import Path

from pipeline.config import Params
from pipeline.eval.compare import arm_label, beats, load_run, mean_curve, render_markdown, summarise_method
from pipeline.config import ConfigError
from pipeline.eval.phenomena import PHENOMENA, judge
from pipeline.stages.common import main_guard, numeric_metrics, stage_run
from pipeline.stages.evaluate import settings as eval_settings
from pipeline.tracking import start_run
from pipeline.utils.io import atomic_open, read_json, write_json
from pipeline.utils.plots import figure, save

# The params keys this stage reads (a key covers its sub-keys); --help shows them.
READS = ("compare.arms", "compare.seeds", "compare.steps", "compare.baseline", "compare.phenomena", "compare.runs_dir",
         "compare.out_dir", "eval.benchmarks", "eval.out_dir", "eval.temperature", "eval.top_p", "eval.variants",
         "entropy.measure.out")
DVC_ADDRESS = "comparison/dvc.yaml:compare"


def _plot(path: Path, series: dict, xlabel: str, ylabel: str, title: str, bands=(), base=None) -> Path:
    fig, ax = figure((7, 3.8))
    ys = [v for _, y in series.values() for v in y if math.isfinite(v)]
    if ys and min(ys) > 0 and max(ys) / min(ys) > 20:  # an exploding arm would flatten a collapse to the axis
        ax.set_yscale("log")
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, marker="o" if len(x) < 12 else None, linewidth=1.2)
    for lo, hi, label in bands:
        ax.axhspan(lo, hi, color="green", alpha=0.12, label=label)
    if base is not None:
        ax.plot(base[0], base[1], color="black", linestyle="--", label="base model")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return save(fig, path)


def plots(out: Path, runs: dict, h0: float, params: Params, base: dict | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    seeds = ", ".join(str(s) for s in params.compare.seeds)
    entropy = {n: (x, [v / h0 for v in y]) for n, rs in runs.items() for x, y in [mean_curve(rs, "entropy")]}
    bands = []
    for name, rs in runs.items():
        target = rs[0]["curve"][-1].get("reg/target")
        ph = next((p for p in params.compare.phenomena.values() if p.arm == name and p.ma_threshold), None)
        if ph is not None and isinstance(target, float) and math.isfinite(target):
            t = target / h0
            bands.append((t * (1 - ph.threshold), t * (1 + ph.threshold), f"{name} target +-{ph.threshold:.0%}"))
    k_series = {}
    for name, rs in runs.items():
        ks = sorted(int(k.split("@")[1]) for k in rs[0]["eval"] if k.startswith("pass@"))
        k_series[name] = (ks, [sum(r["eval"][f"pass@{k}"]["mean"] for r in rs) / len(rs) for k in ks])
    base_k = None
    if base is not None:
        ks = sorted(int(k.split("@")[1]) for k in base if k.startswith("pass@"))
        base_k = (ks, [base[f"pass@{k}"]["mean"] for k in ks])
    sub = f"mean over seeds {seeds}; H0 = {h0:.3f} nats/token"
    return [_plot(out / "entropy_vs_step.png", entropy, "training step", "mean token entropy / H0",
                  f"Policy entropy ({sub})", bands),
            _plot(out / "coef_vs_step.png", {n: mean_curve(rs, "reg/coef") for n, rs in runs.items()},
                  "training step", "entropy coefficient (applied)", f"Coefficients ({sub})"),
            _plot(out / "accuracy_vs_step.png", {n: mean_curve(rs, "accuracy") for n, rs in runs.items()},
                  "training step", "rollout accuracy (fraction correct)", f"Training accuracy ({sub})"),
            _plot(out / "passk_vs_k.png", k_series, "k (samples per problem)", "held-out pass@k",
                  f"Exploration: pass@k on held-out problems ({sub})", base=base_k)]


def check_phenomena(params: Params) -> None:
    """Every configured phenomenon is one this library can judge (checked before anything trains)."""
    for name in params.compare.phenomena:
        if name not in PHENOMENA:
            raise ConfigError(f"params.yaml: key 'compare.phenomena.{name}': is not a known phenomenon. "
                              f"Fix: use one of {', '.join(PHENOMENA)}")


def arm_run_params(params: Params, name: str) -> dict:
    """What distinguishes arm `name` (the overrides its cells run with, without the per-cell seed and output
    paths): logged as the params of the arm's MLflow run."""
    arm = params.compare.arms[name]
    out = {"arm": name, "train.method": arm.method, **arm.overrides, "seeds": list(params.compare.seeds)}
    if params.compare.steps is not None:
        out["train.steps"] = params.compare.steps
    return out


def run(params: Params) -> dict:
    check_phenomena(params)
    c = params.compare
    benchmark = params.eval.benchmarks[0].name
    h0 = read_json(params.entropy.measure.out)["h0"]
    suffixes = tuple(sfx for sfx, *_ in eval_settings(params)[1:])
    runs = {name: [load_run(Path(c.runs_dir) / f"{name}-s{s}", benchmark, suffixes) for s in c.seeds] for name in c.arms}
    base_path = Path(params.eval.out_dir) / "base" / benchmark / "metrics.json"
    base = read_json(base_path) if base_path.is_file() else None
    table = {name: summarise_method(rs, h0) for name, rs in runs.items()}
    ref = [r["eval"]["avg@n"]["mean"] for r in runs[c.baseline]]
    verdicts = {n: "baseline" if n == c.baseline else beats([r["eval"]["avg@n"]["mean"] for r in rs], ref)
                for n, rs in runs.items()}
    phenomena = [judge(name, runs[ph.arm], ph.threshold, h0=h0, base=base, benchmark=benchmark,
                       reference=runs[ph.reference] if ph.reference else None, ma_threshold=ph.ma_threshold,
                       window=ph.window) for name, ph in c.phenomena.items()]
    labels = {n: arm_label(n, a.method, a.overrides) for n, a in c.arms.items()}
    base_row = {k: base[k]["mean"] for k in base if k.startswith(("avg@", "pass@1", "maj@1"))} if base else None
    out = Path(c.out_dir)
    report = {"h0": h0, "benchmark": benchmark, "seeds": list(c.seeds), "baseline": c.baseline, "labels": labels,
              "base": base_row, "table": table, "phenomena": phenomena,
              "vs_baseline": {n: v if v == "baseline" else {True: "better", False: "worse", None: "no difference shown"}[v]
                              for n, v in verdicts.items()}}
    write_json(out / "comparison.json", report)
    with atomic_open(out / "comparison.md") as fh:
        fh.write(render_markdown(table, verdicts, h0, benchmark, labels=labels, baseline=c.baseline,
                                 phenomena=phenomena, base=base_row))
    pngs = plots(out, runs, h0, params, base)
    seeds = "-".join(str(s) for s in c.seeds)
    with stage_run("compare", params, run_name=f"compare-s{seeds}", tags={"method": "all", "seed": seeds}) as parent:
        for path in [out / "comparison.md", out / "comparison.json", *pngs]:
            parent.log_artifact(path)
        parent.log_metrics({f"phenomenon/{p['name']}": float(p["holds"]) for p in phenomena})
        for name, row in table.items():
            with start_run(f"compare/{name}", experiment=params.tracking.experiment, uri=params.tracking.uri,
                           enabled=params.tracking.enabled, run_name=f"compare-{name}-s{seeds}",
                           tags={"method": c.arms[name].method, "arm": name, "seed": seeds}) as child:
                child.log_params(arm_run_params(params, name))
                child.log_metrics(numeric_metrics({k: v["mean"] for k, v in row.items() if v["mean"] is not None}))
    print((out / "comparison.md").read_text())
    return report


if __name__ == "__main__":
    main_guard(run, "compare")
