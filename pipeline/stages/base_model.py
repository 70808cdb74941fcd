"""DVC stage `base_model`: build the embedded tiny Qwen2 model (embedded default) into models/base.

SFT problems are generated from their own seed stream and exclude every held-out eval problem, so
the base model is evaluated on problems it has not seen.  Training prompts are not excluded: the
shortest grades have only 60 (one step) and 360 (two steps) distinct problems, nearly all of them in
the training split, and a base model that never saw a one-step chain cannot stop after one step
(measured pass rate 0.05; docs/testbed.md).  Worked solutions carry noisy steps
(`model.sft.step_noise`, see pipeline/data/synthetic.py): the base model learns to put about
1 - step_noise on the right digit at every step, also on the training prompts it has seen.
With `model.init_config` set (gpu-smoke profile) the model is instead a randomly initialised one of that
named architecture (`pipeline.models.named`, e.g. Qwen2.5-1.5B's), with the same locally trained
tokenizer and no SFT.  With `model.build_tiny: false` (GPU profile) the stage only records which hub model is used.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from pipeline.config import Params
from pipeline.data import synthetic
from pipeline.data.prompts import format_prompt
from pipeline.data.schema import Problem, normalize_text
from pipeline.models.loading import DTYPES
from pipeline.models.named import build_named_model
from pipeline.models.tiny import build_tiny_model, encode_examples, save_model, sft_train
from pipeline.models.tokenizer import train_tokenizer
from pipeline.stages.common import main_guard, record_metrics, stage_run
from pipeline.utils.io import atomic_dir, read_jsonl, write_json

# The params keys this stage reads (a key covers its sub-keys); dvc.yaml lists exactly these, --help shows them.
READS = ("seed", "data.out_dir", "model.name_or_path", "model.build_tiny", "model.prompt_template", "model.tiny",
         "model.sft", "model.dtype", "model.init_config")
METRICS = Path("metrics/base_model.json")


def sft_problems(params: Params) -> list[Problem]:
    prepared = Path(params.data.out_dir)
    exclude = {normalize_text(r["problem"]) for r in read_jsonl(prepared / "eval.jsonl")}
    sft = params.model.sft
    grades = list(range(1, sft.max_grade + 1))
    pool = synthetic.generate(params.seed, "sft", grades, -(-sft.n_examples // len(grades)), step_noise=sft.step_noise)
    return [p for p in pool if normalize_text(p.problem) not in exclude]


def run(params: Params) -> dict:
    out = Path(params.model.name_or_path) if params.model.build_tiny else Path("models/base")
    with stage_run("base_model", params) as tracker:
        if not params.model.build_tiny:
            with atomic_dir(out) as tmp:
                write_json(tmp / "hub_model.json", {"name_or_path": params.model.name_or_path})
            return {"built": 0}
        torch.set_num_threads(1)
        start = time.time()
        problems = sft_problems(params)
        prompts = [format_prompt(p.problem, params.model.prompt_template) for p in problems]
        completions = [" " + p.solution for p in problems]
        tiny = params.model.tiny
        tokenizer = train_tokenizer(prompts + completions, tiny.vocab_size)
        if params.model.init_config:
            model = build_named_model(params.model.init_config, tokenizer, seed=params.seed,
                                      dtype=DTYPES[params.model.dtype])
            examples, history = [], []
        else:
            model = build_tiny_model(tokenizer, hidden_size=tiny.hidden_size, num_layers=tiny.num_layers,
                                     num_heads=tiny.num_heads, num_kv_heads=tiny.num_kv_heads,
                                     intermediate_size=tiny.intermediate_size,
                                     max_position_embeddings=tiny.max_position_embeddings, seed=params.seed)
            examples = encode_examples(tokenizer, prompts, completions, tiny.max_position_embeddings)
            sft = params.model.sft
            history = sft_train(model, tokenizer, examples, steps=sft.steps, batch_size=sft.batch_size, lr=sft.lr,
                                warmup_steps=sft.warmup_steps, seed=params.seed)
        for row in history:
            tracker.log_metrics({"sft_loss": row["loss"], "sft_lr": row["lr"]}, step=row["step"])
        save_model(model, tokenizer, out)
        metrics = {"built": 1, "n_params": sum(p.numel() for p in model.parameters()),
                   "vocab_size": len(tokenizer), "n_sft_examples": len(examples),
                   "final_sft_loss": history[-1]["loss"] if history else None,
                   "seconds": round(time.time() - start, 1)}
        record_metrics(tracker, METRICS, metrics)
    print(f"base_model: {metrics['n_params']} parameters, final SFT loss {metrics['final_sft_loss']}, "
          f"{metrics['seconds']} s -> {out}")
    return metrics


if __name__ == "__main__":
    main_guard(run, "base_model")
