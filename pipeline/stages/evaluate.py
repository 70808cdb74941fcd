"""DVC stage `evaluate`: the base and the trained model on every configured benchmark.

Writes data/eval/<model>/<benchmark>/{samples.jsonl,metrics.json}, data/eval/<model>/manifest.json and
metrics/eval.json (headline metrics per model and the trained - base deltas).  The embedded default
evaluates held-out generated problems at every grade (including grades harder than trained); a
benchmark named `synthetic` reads data/prepared/eval.jsonl, any other name loads through
`pipeline.data.benchmarks` from its path or hub id.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from pipeline.config import Params
from pipeline.data.benchmarks import load_benchmark
from pipeline.data.prompts import template_hash
from pipeline.eval import manifest
from pipeline.eval.evaluate import evaluate
from pipeline.models.loading import load_policy
from pipeline.rollout import resolve_backend
from pipeline.rollout.types import SamplingConfig
from pipeline.stages.common import engine_from_params, load_problems, main_guard, numeric_metrics, stage_run
from pipeline.utils.io import write_json, write_jsonl

HEADLINE = ("avg@n", "pass@1", "maj@1")


def benchmark_problems(params: Params, bench) -> tuple[list, str]:
    if bench.name == "synthetic":
        path = bench.path or str(Path(params.data.out_dir) / "eval.jsonl")
        return load_problems(path), path
    problems, bad = load_benchmark(bench.name, bench.path)
    for b in bad:
        print(f"bad benchmark row: {b.file}:{b.row}: {b.reason}")
    return problems, bench.path or bench.name


def evaluate_model(params: Params, label: str, model_path: str, tracker) -> dict:
    e = params.eval
    out_dir = Path(e.out_dir) / label
    model, tokenizer = load_policy(model_path, params.model.dtype)
    engine = engine_from_params(params, model, tokenizer, model_path=model_path)
    results, files = {}, {}
    for bench in e.benchmarks:
        problems, files[bench.name] = benchmark_problems(params, bench)
        sampling = SamplingConfig(bench.n_samples or e.n_samples, e.temperature, e.top_p, e.max_new_tokens, params.seed)
        rows, metrics = evaluate(engine, tokenizer, problems, template=params.model.prompt_template,
                                 use_chat_template=params.model.use_chat_template, sampling=sampling,
                                 bootstrap=e.bootstrap)
        write_jsonl(out_dir / bench.name / "samples.jsonl", rows)
        write_json(out_dir / bench.name / "metrics.json", metrics)
        results[bench.name] = metrics
        tracker.log_metrics(numeric_metrics({label: {bench.name: metrics}}))
    engine.close()
    write_json(out_dir / "manifest.json", manifest.build(
        model_path=model_path, backend=resolve_backend(params.rollout.backend),
        sampling={"n": e.n_samples, "temperature": e.temperature, "top_p": e.top_p,
                  "max_new_tokens": e.max_new_tokens, "seed": params.seed},
        template_hash=template_hash(params.model.prompt_template, params.model.use_chat_template, tokenizer),
        benchmarks=files))
    return results


def headline(results: dict) -> dict:
    return {b: {k: m[k]["mean"] for k in m if "@" in k} for b, m in results.items()}


def run(params: Params) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    paths = {"base": params.model.name_or_path, "trained": str(Path(params.train.out_dir) / "final")}
    with stage_run("evaluate", params) as tracker:
        summary = {label: headline(evaluate_model(params, label, paths[label], tracker)) for label in params.eval.models}
        if {"base", "trained"} <= set(summary):
            summary["delta"] = {b: {k: summary["trained"][b][k] - summary["base"][b][k] for k in summary["base"][b]}
                                for b in summary["base"]}
        write_json(params.eval.metrics_file, summary)
        tracker.log_artifact(params.eval.metrics_file)
    for b, d in summary.get("delta", {}).items():
        print(f"evaluate[{b}]: " + ", ".join(f"{k} {summary['base'][b][k]:.3f} -> {summary['trained'][b][k]:.3f}"
                                              for k in HEADLINE if k in d))
    return summary


if __name__ == "__main__":
    main_guard(run, "evaluate")
