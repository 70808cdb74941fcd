"""DVC stage `entropy`: the base policy's initial entropy H0 (and the methods' anchors) -> data/entropy/h0.json."""
from __future__ import annotations

import os
import random
from pathlib import Path

import torch

from pipeline.config import Params
from pipeline.measure.initial_entropy import anchors_of, measure
from pipeline.rl.registry import method_class, method_configs
from pipeline.rollout.types import SamplingConfig
from pipeline.stages.common import load_problems, main_guard, measurement_setup, record_metrics, stage_run
from pipeline.utils.io import read_jsonl, write_json
from pipeline.utils.seeding import derive_seed

# The params keys this stage reads (a key covers its sub-keys); dvc.yaml lists exactly these, --help shows them.
READS = ("seed", "data.out_dir", "model.name_or_path", "model.dtype", "model.prompt_template",
         "model.use_chat_template", "model.device", "model.attn_implementation", "model.stop_tokens", "entropy",
         "train.temperature", "rollout", "difficulty.out")
METRICS = Path("metrics/entropy.json")


def run(params: Params) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    m = params.entropy.measure
    rates = {r["id"]: r for r in read_jsonl(params.difficulty.out)}
    problems = [p for p in load_problems(Path(params.data.out_dir) / "train.jsonl") if rates.get(p.id, {}).get("kept")]
    problems = random.Random(derive_seed(params.seed, "entropy")).sample(problems, min(m.n_prompts, len(problems)))
    anchors = {name: (method_class(name), getattr(params.entropy, name)) for name in method_configs()}
    with stage_run("entropy", params) as tracker:
        engine, model, tokenizer, _ = measurement_setup(params, need_model=True)
        result = measure(model, tokenizer, engine, problems, {k: r["bucket"] for k, r in rates.items()},
                         template=params.model.prompt_template, use_chat_template=params.model.use_chat_template,
                         sampling=SamplingConfig(m.n_samples, m.temperature, 1.0, m.max_new_tokens,
                                                 derive_seed(params.seed, "entropy-sampling")),
                         temperature=params.train.temperature, chunk_size=m.chunk_size, bootstrap=m.bootstrap,
                         anchors=anchors)
        engine.close()
        write_json(m.out, result)
        record_metrics(tracker, METRICS, result)
    print(summary_line(result))
    return result


def summary_line(result: dict) -> str:
    """H0 with its CI, and every anchor the registered methods measured (named by their keys, no method
    named here)."""
    anchors = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in anchors_of(result).items())
    return (f"entropy: H0 = {result['h0']:.4f} nats/token (95% CI {result['h0_ci95'][0]:.4f}-"
            f"{result['h0_ci95'][1]:.4f}) over {result['n_tokens']} tokens; anchors: {anchors or 'none'}")


if __name__ == "__main__":
    main_guard(run, "entropy")
