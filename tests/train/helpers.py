"""A throw-away working directory with every input the train stage reads, on the tiny fixture model."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from pipeline.data import synthetic
from tests.conftest import tiny_params_dict


def make_workdir(root: Path, model_dir: Path, **overrides) -> Path:
    """Writes data/prepared, data/difficulty, data/entropy and params.yaml under root; returns params path."""
    problems = synthetic.generate(0, "train", [1, 2, 3], 8)
    (root / "data/prepared").mkdir(parents=True, exist_ok=True)
    (root / "data/prepared/train.jsonl").write_text("".join(json.dumps(p.to_row()) + "\n" for p in problems))
    rates = [{"id": p.id, "n": 4, "correct": i % 5, "pass_rate": (i % 5) / 4,
              "bucket": "0.00-0.50" if (i % 5) < 2 else "0.50-1.00", "level": p.level, "kept": True}
             for i, p in enumerate(problems)]
    (root / "data/difficulty").mkdir(parents=True, exist_ok=True)
    (root / "data/difficulty/pass_rates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rates))
    (root / "data/entropy").mkdir(parents=True, exist_ok=True)
    (root / "data/entropy/h0.json").write_text(json.dumps({"h0": 1.0, "siren_anchor": 0.5, "aent_clamped_entropy": 0.8}))
    settings = {"model.name_or_path": str(model_dir), "train.steps": 2, "train.prompts_per_step": 2,
                "train.group_size": 4, "train.micro_batch_size": 4, "train.max_new_tokens": 24,
                "train.checkpoint_every": 1, "train.lr": 1e-3, "train.out_dir": "models/trained",
                "entropy.measure.chunk_size": 64, "rollout.backend": "hf", **overrides}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict(**settings)))
    return path
