"""Nested state (dicts, lists, tuples, numbers, text, tensors, numpy arrays) as files that cannot run code.

`save(state, json_path, tensors_path)` writes the structure as JSON and every tensor into one safetensors
file, referenced from the JSON by key; `load` reverses it.  Neither format can execute anything when read
(unlike a pickle or `torch.load(weights_only=False)`), so the files may come from an untrusted place.
Tuples, numpy arrays (with their dtype) and dicts with non-text keys are tagged so that Python's and
numpy's RNG states come back exactly as `random.setstate` / `np.random.set_state` expect them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

_RESERVED = ("__tensor__", "__ndarray__", "__tuple__", "__items__")


def encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """`obj` as JSON-able data; tensors go into `tensors` (referenced by key)."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _RESERVED for k in obj):
            return {k: encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[encode(k, tensors), encode(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"state holds a {type(obj).__name__}, which cannot be stored as data")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return np.array(obj["__ndarray__"], dtype=np.dtype(obj["dtype"]))
    if "__tuple__" in obj:
        return tuple(decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_hashable(decode(k, tensors)): decode(v, tensors) for k, v in obj["__items__"]}
    return {k: decode(v, tensors) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def save(state: Any, json_path: str | Path, tensors_path: str | Path) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    payload = encode(state, tensors)
    save_file(tensors, str(tensors_path))
    Path(json_path).write_text(json.dumps(payload), encoding="utf-8")


def load(json_path: str | Path, tensors_path: str | Path) -> Any:
    """The saved state; any malformed content raises (ValueError, KeyError, safetensors' own error)."""
    from safetensors.torch import load_file

    return decode(json.loads(Path(json_path).read_text(encoding="utf-8")), load_file(str(tensors_path)))
