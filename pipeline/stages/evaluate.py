"""DVC stage `evaluate`: the base and the trained model on every configured benchmark.

Writes data/eval/<model>/<benchmark>/{samples.jsonl,metrics.json}, data/eval/<model>/manifest.json,
metrics/eval.json (headline metrics per model and the trained - base deltas) and, beside it,
headline.json: the few numbers `dvc exp show` should lead with (method, seed, steps, final entropy / H0,
held-out avg@n and pass@k at the largest k of the trained model, per benchmark).  Each `eval.variants` entry
evaluates every benchmark again at another temperature, reported as `<benchmark>@T<t>` (the embedded
default evaluates at the training temperature 1.0 and reports T = 0.6 beside it).  The embedded default
evaluates held-out generated problems at every grade (including grades harder than trained); a
benchmark named `synthetic` reads data/prepared/eval.jsonl, any other name loads through
`pipeline.data.benchmarks` from its path or hub id.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from pipeline.config import Params
from pipeline.data.benchmarks import load_benchmark
from pipeline.data.prompts import template_hash
from pipeline.eval import manifest
from pipeline.eval.evaluate import evaluate
from pipeline.rollout.types import SamplingConfig
from pipeline.stages.common import load_problems, main_guard, measurement_setup, numeric_metrics, stage_run
from pipeline.tracking import sample_rows
from pipeline.utils.io import read_json, write_json, write_jsonl
from pipeline.utils.progress import label as progress_label

# The params keys this stage reads (a key covers its sub-keys); dvc.yaml lists exactly these, --help shows them.
READS = ("seed", "data.out_dir", "model.name_or_path", "model.dtype", "model.prompt_template",
         "model.use_chat_template", "model.device", "model.attn_implementation", "model.stop_tokens", "eval",
         "rollout", "train.out_dir", "train.method", "train.metrics_file", "entropy.measure.out", "hub.dir")
HEADLINE = ("avg@n", "pass@1", "maj@1")


def benchmark_problems(params: Params, bench) -> tuple[list, str]:
    if bench.name == "synthetic":
        path = bench.path or str(Path(params.data.out_dir) / "eval.jsonl")
        return load_problems(path), path
    problems, bad = load_benchmark(bench.name, bench.path)
    for b in bad:
        print(f"bad benchmark row: {b.file}:{b.row}: {b.reason}")
    return problems, bench.path or bench.name


def settings(params: Params) -> list[tuple[str, float, float, Optional[int]]]:
    """(label suffix, temperature, top_p, n_samples or None) of the main evaluation and every variant."""
    e = params.eval
    return [("", e.temperature, e.top_p, None)] + [
        (f"@T{v.temperature:g}", v.temperature, v.top_p if v.top_p is not None else e.top_p, v.n_samples)
        for v in e.variants]


def evaluate_model(params: Params, label: str, model_path: str, tracker) -> dict:
    e = params.eval
    out_dir = Path(e.out_dir) / label
    engine, _, tokenizer, backend = measurement_setup(params, model_path, need_model=False)
    results, files = {}, {}
    for bench in e.benchmarks:
        problems, files[bench.name] = benchmark_problems(params, bench)
        for suffix, temperature, top_p, n in settings(params):
            name = bench.name + suffix
            sampling = SamplingConfig(n or bench.n_samples or e.n_samples, temperature, top_p, e.max_new_tokens,
                                      params.seed)
            with progress_label(f"evaluate {label}/{name}"):
                rows, metrics = evaluate(engine, tokenizer, problems, template=params.model.prompt_template,
                                         use_chat_template=params.model.use_chat_template, sampling=sampling,
                                         bootstrap=e.bootstrap)
            write_jsonl(out_dir / name / "samples.jsonl", rows)
            tracker.log_table(sample_rows(out_dir / name / "samples.jsonl"), f"samples/{label}_{name}.json")
            write_json(out_dir / name / "metrics.json", metrics)
            results[name] = metrics
            tracker.log_metrics(numeric_metrics({label: {name: metrics}}))
    engine.close()
    write_json(out_dir / "manifest.json", manifest.build(
        model_path=model_path, backend=backend,
        sampling={"n": e.n_samples, "temperature": e.temperature, "top_p": e.top_p,
                  "max_new_tokens": e.max_new_tokens, "seed": params.seed,
                  "variants": [{"temperature": t, "top_p": p, "n": n} for _, t, p, n in settings(params)[1:]]},
        template_hash=template_hash(params.model.prompt_template, params.model.use_chat_template, tokenizer),
        benchmarks=files, hub=manifest.hub_records(params.hub.dir)))
    return results


def headline(results: dict) -> dict:
    return {b: {k: m[k]["mean"] for k in m if "@" in k} for b, m in results.items()}


def headline_path(params: Params) -> Path:
    """headline.json beside eval.metrics_file (metrics/ for the pipeline, the run dir for a comparison cell)."""
    return Path(params.eval.metrics_file).with_name("headline.json")


def headline_metrics(params: Params, results: dict[str, dict]) -> dict:
    """method, seed, steps, final entropy / H0 and, per benchmark, avg@n and pass@<largest k> of the trained
    model (the base model when only it was evaluated).  Missing train metrics or H0 give nulls.  All under
    one `headline` key, so `dvc exp show --drop '^(?!Experiment|headline\.)'` keeps exactly these columns."""
    train_file, h0_file = Path(params.train.metrics_file), Path(params.entropy.measure.out)
    train = read_json(train_file) if train_file.is_file() else {}
    h0 = read_json(h0_file).get("h0") if h0_file.is_file() else None
    label = "trained" if "trained" in results else next(iter(results))
    out = {"method": params.train.method, "seed": params.seed, "model": label,
           "steps": train["step"] + 1 if isinstance(train.get("step"), (int, float)) else None,
           "entropy/h0": train["entropy"] / h0 if h0 and isinstance(train.get("entropy"), (int, float)) else None}
    for bench, m in results[label].items():
        k = max(int(key.split("@")[1]) for key in m if key.startswith("pass@"))
        out[bench] = {"avg@n": m["avg@n"]["mean"], f"pass@{k}": m[f"pass@{k}"]["mean"]}
    return {"headline": out}


def run(params: Params) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    paths = {"base": params.model.name_or_path, "trained": str(Path(params.train.out_dir) / "final")}
    with stage_run("evaluate", params) as tracker:
        results = {label: evaluate_model(params, label, paths[label], tracker) for label in params.eval.models}
        summary = {label: headline(r) for label, r in results.items()}
        if {"base", "trained"} <= set(summary):
            summary["delta"] = {b: {k: summary["trained"][b][k] - summary["base"][b][k] for k in summary["base"][b]}
                                for b in summary["base"]}
        write_json(params.eval.metrics_file, summary)
        write_json(headline_path(params), headline_metrics(params, results))
        tracker.log_artifact(params.eval.metrics_file)
        tracker.log_artifact(headline_path(params))
    for b, d in summary.get("delta", {}).items():
        print(f"evaluate[{b}]: " + ", ".join(f"{k} {summary['base'][b][k]:.3f} -> {summary['trained'][b][k]:.3f}"
                                              for k in HEADLINE if k in d))
    return summary


if __name__ == "__main__":
    main_guard(run, "evaluate")
