"""DVC stage `difficulty`: base-model pass rate per training prompt -> data/difficulty/pass_rates.jsonl."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from pipeline.config import Params
from pipeline.measure.difficulty import bucket_names, estimate
from pipeline.rollout.types import SamplingConfig
from pipeline.stages.common import load_problems, main_guard, measurement_setup, record_metrics, stage_run
from pipeline.utils import plots
from pipeline.utils.io import write_jsonl

# The params keys this stage reads (a key covers its sub-keys); dvc.yaml lists exactly these, --help shows them.
READS = ("seed", "data.out_dir", "model.name_or_path", "model.dtype", "model.prompt_template",
         "model.use_chat_template", "model.device", "model.attn_implementation", "model.stop_tokens", "difficulty",
         "rollout")
METRICS = Path("metrics/difficulty.json")
PLOT = Path("plots/difficulty_hist.png")


def histogram_png(rows: list[dict], path: Path, *, edges, seed: int, model: str) -> Path:
    """Pass rates of the training prompts: kept vs dropped (never / always solved) prompts stacked, one bar per
    possible pass rate k/n, the bucket edges as dashed lines; titled with the base model and seed."""
    n = rows[0]["n"] if rows else 1
    fig, ax = plots.figure((6.5, 3.6))
    groups = {"kept": [r for r in rows if r["kept"]],
              f"dropped: never solved ({sum(not r['kept'] and r['correct'] == 0 for r in rows)})":
                  [r for r in rows if not r["kept"] and r["correct"] == 0],
              f"dropped: always solved ({sum(not r['kept'] and r['correct'] == r['n'] for r in rows)})":
                  [r for r in rows if not r["kept"] and r["correct"] == r["n"]]}
    groups = {k: v for k, v in groups.items() if v or k == "kept"}
    bins = [(k - 0.5) / n for k in range(n + 2)]  # one bar centred on each pass rate k/n
    ax.hist([[r["pass_rate"] for r in g] for g in groups.values()], bins=bins, stacked=True, label=list(groups),
            color=["tab:blue", "tab:grey", "tab:orange"][:len(groups)], edgecolor="white")
    # a pass rate equal to an edge opens the next bucket, so each edge is drawn between bars
    cuts = [(math.ceil(edge * n - 1e-9) - 0.5) / n for edge in edges]
    for i, cut in enumerate(cuts):
        ax.axvline(cut, color="black", linestyle="--", linewidth=0.8, label="bucket edges" if i == 0 else None)
    for name, lo, hi in zip(bucket_names(edges), [bins[0], *cuts], [*cuts, bins[-1]]):
        ax.annotate(name, ((lo + hi) / 2, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                    fontsize=7)
    ax.set_title(f"Base-model pass rate per training prompt ({model}, seed {seed}, n = {n} samples)\n", fontsize=9)
    ax.set_xlabel("base-model pass rate (fraction of n samples correct)")
    ax.set_ylabel("training prompts (count)")
    ax.legend(fontsize=7)
    return plots.save(fig, path)


def run(params: Params) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    d = params.difficulty
    problems = load_problems(Path(params.data.out_dir) / "train.jsonl")[:d.max_prompts]
    with stage_run("difficulty", params) as tracker:
        engine, _, tokenizer, _ = measurement_setup(params, need_model=False)
        rows, metrics = estimate(engine, tokenizer, problems, template=params.model.prompt_template,
                                 use_chat_template=params.model.use_chat_template,
                                 sampling=SamplingConfig(d.n_samples, d.temperature, d.top_p, d.max_new_tokens, params.seed),
                                 edges=d.bucket_edges, drop_always_solved=d.drop_always_solved,
                                 drop_never_solved=d.drop_never_solved)
        engine.close()
        write_jsonl(d.out, rows)
        record_metrics(tracker, METRICS, metrics)
        histogram_png(rows, PLOT, edges=d.bucket_edges, seed=params.seed, model=params.model.name_or_path)
        tracker.log_artifact(PLOT)
    print(f"difficulty: {metrics['n_prompts']} prompts, mean pass rate {metrics['mean_pass_rate']:.3f}, "
          f"buckets {metrics['bucket_counts']}, verifier {metrics['verifier_status']}")
    return metrics


if __name__ == "__main__":
    main_guard(run, "difficulty")
