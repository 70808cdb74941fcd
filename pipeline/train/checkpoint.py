"""Atomic, resumable training checkpoints.

`<out>/checkpoints/step-000010/` holds the DeepSpeed checkpoint (model, optimizer, scheduler), the
trainer state (step, data cursor, regularizer/controller state, RNG states) and a `COMPLETE` marker
written last.  Everything is first written to `.tmp-step-000010/` and renamed into place by rank 0 after
all ranks finished, so a run killed at any point (mid-write included) leaves only complete checkpoints
(a leftover temp dir is ignored and removed).  `latest()` is the newest directory with the marker.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from pipeline.train.distributed import barrier, is_main


def _name(step: int) -> str:
    return f"step-{step:06d}"


def latest(root: str | Path) -> Optional[Path]:
    root = Path(root)
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / "COMPLETE").is_file())
    return done[-1] if done else None


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(engine, root: str | Path, step: int, trainer_state: dict, keep: int = 2) -> Path:
    """Write checkpoint `step` atomically (collective: every rank calls it)."""
    root = Path(root)
    final, tmp = root / _name(step), root / f".tmp-{_name(step)}"
    if is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    engine.save_checkpoint(str(tmp), tag="ds", save_latest=False)
    barrier()
    if is_main():
        torch.save({**trainer_state, "rng": rng_state()}, tmp / "trainer_state.pt")
        (tmp / "COMPLETE").write_text(str(step))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _prune(root, keep)
    barrier()
    return final


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / "COMPLETE").is_file())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)


def read_state(path: str | Path) -> dict:
    """The trainer state of a complete checkpoint, without touching the engine."""
    return torch.load(Path(path) / "trainer_state.pt", weights_only=False)


def load(engine, path: str | Path) -> dict:
    """Restore model/optimizer into `engine` and return the trainer state (RNG states applied)."""
    path = Path(path)
    engine.load_checkpoint(str(path), tag="ds", load_optimizer_states=True, load_lr_scheduler_states=True)
    state = read_state(path)
    set_rng_state(state["rng"])
    return state
