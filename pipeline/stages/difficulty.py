"""DVC stage `difficulty`: base-model pass rate per training prompt -> data/difficulty/pass_rates.jsonl."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from pipeline.config import Params
from pipeline.measure.difficulty import estimate
from pipeline.models.loading import load_policy
from pipeline.rollout.types import SamplingConfig
from pipeline.stages.common import engine_from_params, load_problems, main_guard, record_metrics, stage_run
from pipeline.utils import plots
from pipeline.utils.io import write_jsonl

METRICS = Path("metrics/difficulty.json")
PLOT = Path("plots/difficulty_hist.png")


def histogram_png(rows: list[dict], path: Path) -> None:
    fig, ax = plots.figure((5, 3))
    ax.hist([r["pass_rate"] for r in rows], bins=min(20, rows[0]["n"] + 1) if rows else 10, range=(0, 1))
    ax.set_xlabel("base-model pass rate")
    ax.set_ylabel("prompts")
    plots.save(fig, path)


def run(params: Params) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    d = params.difficulty
    problems = load_problems(Path(params.data.out_dir) / "train.jsonl")[:d.max_prompts]
    with stage_run("difficulty", params) as tracker:
        model, tokenizer = load_policy(params.model.name_or_path, params.model.dtype)
        engine = engine_from_params(params, model, tokenizer)
        rows, metrics = estimate(engine, tokenizer, problems, template=params.model.prompt_template,
                                 use_chat_template=params.model.use_chat_template,
                                 sampling=SamplingConfig(d.n_samples, d.temperature, d.top_p, d.max_new_tokens, params.seed),
                                 edges=d.bucket_edges, drop_always_solved=d.drop_always_solved,
                                 drop_never_solved=d.drop_never_solved)
        engine.close()
        write_jsonl(d.out, rows)
        record_metrics(tracker, METRICS, metrics)
        histogram_png(rows, PLOT)
        tracker.log_artifact(PLOT)
    print(f"difficulty: {metrics['n_prompts']} prompts, mean pass rate {metrics['mean_pass_rate']:.3f}, "
          f"buckets {metrics['bucket_counts']}, verifier {metrics['verifier_status']}")
    return metrics


if __name__ == "__main__":
    main_guard(run, "difficulty")
