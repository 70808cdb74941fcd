"""Loading a policy and its tokenizer from a saved directory or hub id (offline-friendly), and the
device a stage puts it on.

`resolve_device("auto")` is CUDA when torch sees a GPU and the CPU otherwise; an explicit "cuda" without
a GPU is a config error (named key, fix), raised before anything is loaded.  Under a launcher the CUDA
device is the process's LOCAL_RANK.
"""
from __future__ import annotations

import os

import torch

from pipeline.config import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(requested: str = "auto") -> torch.device:
    """`model.device` -> a torch device: auto = cuda if available else cpu; cuda without a GPU fails."""
    if requested not in ("auto", "cuda", "cpu"):
        raise ConfigError(f"params.yaml: key 'model.device' = {requested!r}: must be auto, cuda or cpu")
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise ConfigError("params.yaml: key 'model.device' = 'cuda': torch sees no CUDA device here. "
                          "Fix: set model.device: auto (CPU when there is no GPU) or run on a GPU machine")
    if requested == "cpu" or not cuda:
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def load_tokenizer(name_or_path: str):
    """The tokenizer, with the EOS token as pad token when it has none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy(name_or_path: str, dtype: str = "float32", *, device: str | torch.device = "cpu",
                attn_implementation: str | None = None):
    """-> (model in eval mode on `device`, tokenizer with a pad token)."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(name_or_path)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=DTYPES[dtype], **kwargs)
    if torch.device(device).type != "cpu":
        model.to(device)
    model.eval()
    return model, tokenizer
