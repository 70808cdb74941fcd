"""Shared fixtures: repository paths, the shared benchmark copies and a tiny-params factory."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    """The real benchmark copies beside the clone (never copied into the repo).  Missing -> fail loudly."""
    path = Path(os.environ.get("AER_SHARED_BENCHMARKS", ROOT.parent / "shared" / "benchmarks"))
    if not (path / "math500.jsonl").is_file():
        pytest.fail(f"benchmark copies not found at {path}; set AER_SHARED_BENCHMARKS")
    return path


def tiny_params_dict(**overrides) -> dict:
    """params.yaml shrunk for tests: small data, a 1-layer model, a few SFT steps."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["synthetic"].update({"n_train": 60, "n_eval_per_grade": 4, "train_grades": [1, 2, 3],
                                     "eval_grades": [1, 2, 3, 4]})
    raw["model"]["tiny"].update({"vocab_size": 320, "hidden_size": 64, "num_layers": 1, "num_heads": 2,
                                 "num_kv_heads": 1, "intermediate_size": 128, "max_position_embeddings": 128})
    raw["model"]["sft"].update({"n_examples": 300, "steps": 20, "batch_size": 16, "max_grade": 4})
    raw["eval"].update({"n_samples": 4, "variants": [], "max_new_tokens": 32})
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return raw


@pytest.fixture
def tiny_params_file(tmp_path):
    def make(**overrides) -> Path:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(tiny_params_dict(**overrides)))
        return path
    return make


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A small Qwen2 model (64 hidden, 1 layer) warm-started for a few steps, saved with save_pretrained."""
    from pipeline.data import synthetic
    from pipeline.data.prompts import format_prompt
    from pipeline.models.tiny import build_tiny_model, encode_examples, save_model, sft_train
    from pipeline.models.tokenizer import train_tokenizer

    probs = synthetic.generate(0, "fixture", [1, 2, 3], 150)
    prompts = [format_prompt(p.problem, "Q: {problem}\nA:") for p in probs]
    comps = [" " + p.solution for p in probs]
    tok = train_tokenizer(prompts + comps, 320)
    model = build_tiny_model(tok, hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1,
                             intermediate_size=128, max_position_embeddings=128, seed=0)
    sft_train(model, tok, encode_examples(tok, prompts, comps, 128), steps=60, batch_size=16, lr=3e-3,
              warmup_steps=5, seed=0)
    path = tmp_path_factory.mktemp("tiny") / "model"
    save_model(model, tok, path)
    return path
