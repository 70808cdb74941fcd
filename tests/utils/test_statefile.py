"""Data-only state files: nested tensors, numpy arrays, tuples and odd keys round-trip; nothing else is stored."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pipeline.utils import statefile


def test_nested_state_roundtrips_exactly(tmp_path):
    state = {"gen": torch.Generator().manual_seed(3).get_state(), "rng": (random.getstate(), np.random.get_state()),
             "w": {"a": torch.ones(2, 3, dtype=torch.bfloat16), "none": None, "ok": True, "n": 2**40},
             "ids": {4: "four", ("a", 1): [1.5, "x"]}, "__tensor__": "plain text under a reserved key",
             "arr": np.arange(4, dtype=np.uint32), "scalar": np.float32(0.5)}
    statefile.save(state, tmp_path / "s.json", tmp_path / "s.safetensors")
    back = statefile.load(tmp_path / "s.json", tmp_path / "s.safetensors")
    assert torch.equal(back["gen"], state["gen"]) and torch.equal(back["w"]["a"], state["w"]["a"])
    random.setstate(back["rng"][0])
    np.random.set_state(back["rng"][1])
    assert back["rng"][0] == state["rng"][0] and back["arr"].dtype == np.uint32
    assert back["ids"] == {4: "four", ("a", 1): [1.5, "x"]} and back["__tensor__"] == state["__tensor__"]
    assert back["w"]["n"] == 2**40 and back["scalar"] == 0.5 and back["w"]["none"] is None
    text = (tmp_path / "s.json").read_text()
    assert '{"__tensor__": "t0"}' in text and len(text) < 20_000  # tensors are referenced, not spelled out


def test_objects_that_are_not_data_are_refused(tmp_path):
    with pytest.raises(TypeError, match="state holds a function"):
        statefile.save({"f": lambda: 0}, tmp_path / "s.json", tmp_path / "s.st")
