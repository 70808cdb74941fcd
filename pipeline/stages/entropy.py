"""DVC stage `entropy`: the base policy's initial entropy H0 (and SIREN/AEnt anchors) -> data/entropy/h0.json."""
from __future__ import annotations

import os
import random
from pathlib import Path

import torch

from pipeline.config import Params
from pipeline.measure.initial_entropy import measure
from pipeline.models.loading import load_policy
from pipeline.rl.baselines import Siren
from pipeline.rollout.types import SamplingConfig
from pipeline.stages.common import engine_from_params, load_problems, main_guard, record_metrics, stage_run
from pipeline.utils.io import read_jsonl, write_json
from pipeline.utils.seeding import derive_seed

METRICS = Path("metrics/entropy.json")


def run(params: Params) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    m = params.entropy.measure
    rates = {r["id"]: r for r in read_jsonl(params.difficulty.out)}
    problems = [p for p in load_problems(Path(params.data.out_dir) / "train.jsonl") if rates.get(p.id, {}).get("kept")]
    problems = random.Random(derive_seed(params.seed, "entropy")).sample(problems, min(m.n_prompts, len(problems)))
    sv = params.entropy.siren
    with stage_run("entropy", params) as tracker:
        model, tokenizer = load_policy(params.model.name_or_path, params.model.dtype)
        engine = engine_from_params(params, model, tokenizer)
        result = measure(model, tokenizer, engine, problems, {k: r["bucket"] for k, r in rates.items()},
                         template=params.model.prompt_template, use_chat_template=params.model.use_chat_template,
                         sampling=SamplingConfig(m.n_samples, m.temperature, 1.0, m.max_new_tokens,
                                                 derive_seed(params.seed, "entropy-sampling")),
                         temperature=params.train.temperature, chunk_size=m.chunk_size, bootstrap=m.bootstrap,
                         siren=Siren(beta=sv.beta, top_p=sv.top_p, top_k=sv.top_k, rho=sv.rho),
                         aent_clamp_p=params.entropy.aent.clamp_p)
        engine.close()
        write_json(m.out, result)
        record_metrics(tracker, METRICS, result)
    print(f"entropy: H0 = {result['h0']:.4f} nats/token (95% CI {result['h0_ci95'][0]:.4f}-{result['h0_ci95'][1]:.4f}) "
          f"over {result['n_tokens']} tokens; SIREN anchor {result.get('siren_anchor')}")
    return result


if __name__ == "__main__":
    main_guard(run, "entropy")
