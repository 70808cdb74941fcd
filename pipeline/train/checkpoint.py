"""Atomic, resumable training checkpoints that cannot run code when read back.

`<out>/checkpoints/step-000010/` holds the DeepSpeed checkpoint (model, optimizer, scheduler) under `ds/`,
the trainer state (step, data cursor, regularizer/controller state, RNG states) as `trainer_state.json`
with its tensors in `trainer_state.safetensors` (`pipeline.utils.statefile`), a `MANIFEST.json` with the sha256 of every file, and a
`COMPLETE` marker written last.  Everything is first written to `.tmp-step-000010/` and renamed into place
by rank 0 after all ranks finished, so a run killed at any point (mid-write included) leaves only complete
checkpoints (a leftover temp dir is ignored and removed); a write that fails (a full disk) removes its
temp dir at once and raises an OSError naming it.  `latest()` is the newest directory with the marker.

Checkpoints travel through DVC remotes, so they are untrusted input.  Nothing here unpickles: the trainer
state is JSON plus safetensors, and DeepSpeed's own `torch.load(weights_only=False)` runs with `torch.load`
forced to `weights_only=True` (allowing only the few plain DeepSpeed data classes its optimizer states
hold).  The manifest is checked first, so a file that was changed, added or removed since the save is
refused with a clear error before anything is parsed.  (The manifest detects corruption and tampering with
single files; whoever can rewrite the whole directory can rewrite the manifest too, which is why loading
never relies on it alone.)
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from pipeline.train.distributed import barrier, is_main
from pipeline.utils import statefile
from pipeline.utils.io import InputError, as_disk_error, file_digest, naming

STATE_JSON, STATE_TENSORS, MANIFEST, MARKER = ("trainer_state.json", "trainer_state.safetensors", "MANIFEST.json",
                                               "COMPLETE")


class CheckpointError(InputError):
    """A checkpoint that must not be loaded: tampered, corrupted, incomplete or of an old format."""


def _name(step: int) -> str:
    return f"step-{step:06d}"


def _complete(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / MARKER).is_file())


def latest(root: str | Path) -> Optional[Path]:
    root = Path(root)
    if not root.is_dir():
        return None
    done = _complete(root)
    return done[-1] if done else None


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


# --- trainer state: JSON with tensors in safetensors ------------------------------------------------------

def write_state(directory: Path, state: dict) -> None:
    statefile.save(state, directory / STATE_JSON, directory / STATE_TENSORS)


def _read_state_files(directory: Path) -> dict:
    try:
        return statefile.load(directory / STATE_JSON, directory / STATE_TENSORS)
    except Exception as exc:  # safetensors raises its own error type; any failure means unreadable
        raise CheckpointError(f"{directory}: trainer state unreadable ({type(exc).__name__}: {exc}). "
                              "Fix: delete this checkpoint directory to resume from an older one") from None


# --- manifest ------------------------------------------------------------------------------------------------

def _files(directory: Path) -> list[str]:
    """Every file below `directory` (relative POSIX paths) except the top-level manifest and marker; a nested
    file that happens to be named COMPLETE or MANIFEST.json is checked like any other."""
    rels = (p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(rel for rel in rels if rel not in (MANIFEST, MARKER))


def write_manifest(directory: Path) -> None:
    digests = {rel: file_digest(directory / rel) for rel in _files(directory)}
    (directory / MANIFEST).write_text(json.dumps({"sha256": digests}, indent=1, sort_keys=True), encoding="utf-8")


def verify(directory: str | Path, only: Optional[tuple[str, ...]] = None) -> None:
    """Refuse (CheckpointError) unless every file (or the files in `only`) matches the save-time manifest
    and, for a full check, no file was added.  Symlinks are refused: they could point anywhere."""
    directory = Path(directory)
    fix = ("Fix: delete this checkpoint directory (training resumes from an older one, or starts fresh), "
           "or set train.resume: never")
    if not (directory / MANIFEST).is_file():
        old = " (an old-format checkpoint with a pickled trainer_state.pt, never unpickled)" if (
            directory / "trainer_state.pt").exists() else ""
        raise CheckpointError(f"{directory}: no {MANIFEST}{old}; refusing to load an unverifiable checkpoint. {fix}")
    try:
        expected = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["sha256"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in expected.items()):
            raise TypeError("not a table of file names to sha256 digests")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{directory}: {MANIFEST} is unreadable ({exc}). {fix}") from None
    outside = [rel for rel in expected if Path(rel).is_absolute() or ".." in Path(rel).parts]
    if outside:  # hashing /dev/zero or a file elsewhere would hang or leak: only files inside are checked
        raise CheckpointError(f"{directory}: {MANIFEST} names {outside[0]!r}, outside the checkpoint. {fix}")
    present = _files(directory)
    names = list(only) if only is not None else sorted(set(expected) | set(present))
    for rel in names:
        path = directory / rel
        if path.is_symlink():
            raise CheckpointError(f"{directory}: {rel} is a symlink; refusing to load. {fix}")
        if rel not in expected:
            raise CheckpointError(f"{directory}: {rel} is not in the save-time manifest (a planted file?); "
                                  f"refusing to load. {fix}")
        if not path.is_file():
            raise CheckpointError(f"{directory}: {rel} is missing; refusing to load. {fix}")
        if file_digest(path) != expected[rel]:
            raise CheckpointError(f"{directory}: {rel} does not match its sha256 in {MANIFEST} (tampered or "
                                  f"corrupted); refusing to load. {fix}")


# --- DeepSpeed's own files -------------------------------------------------------------------------------------

def _deepspeed_safe_globals() -> list:
    """The plain data classes DeepSpeed's optimizer states pickle (loss scaler settings, an enum, fragment
    addresses); nothing callable."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


@contextlib.contextmanager
def weights_only_torch_load() -> Iterator[None]:
    """Force every `torch.load` inside (DeepSpeed passes weights_only=False) to the restricted unpickler."""
    original = torch.load

    def safe_load(f, *args, **kwargs):
        kwargs["weights_only"] = True
        try:
            return original(f, *args, **kwargs)
        except Exception as exc:
            if "Weights only load failed" in str(exc):
                raise CheckpointError(f"{f}: holds pickled objects beyond tensors and plain data; refusing to "
                                      "unpickle it. Fix: delete this checkpoint directory") from None
            raise

    torch.load = safe_load
    try:
        with torch.serialization.safe_globals(_deepspeed_safe_globals()):
            yield
    finally:
        torch.load = original


# --- save / load -------------------------------------------------------------------------------------------------

def save(engine, root: str | Path, step: int, trainer_state: dict, keep: int = 2) -> Path:
    """Write checkpoint `step` atomically (collective: every rank calls it).  A failed write removes the
    temp dir and raises OSError naming it when the disk is full or read-only."""
    root = Path(root)
    final, tmp = root / _name(step), root / f".tmp-{_name(step)}"
    try:
        if is_main():
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        barrier()
        engine.save_checkpoint(str(tmp), tag="ds", save_latest=False)
        barrier()
        if is_main():
            write_state(tmp, {**trainer_state, "rng": rng_state()})
            write_manifest(tmp)
            (tmp / MARKER).write_text(str(step))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _prune(root, keep)
    except Exception as exc:
        disk = as_disk_error(exc, tmp)
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written checkpoint must not keep filling the disk
        if disk is not None:
            raise disk from exc
        raise
    barrier()
    return final


def _prune(root: Path, keep: int) -> None:
    for old in _complete(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)


def read_state(path: str | Path) -> dict:
    """The trainer state of a complete checkpoint (its files verified against the manifest), without
    touching the engine; never unpickles."""
    path = Path(path)
    verify(path, only=(STATE_JSON, STATE_TENSORS))
    return _read_state_files(path)


def load(engine, path: str | Path) -> dict:
    """Verify the whole checkpoint, restore model/optimizer into `engine` and return the trainer state (RNG
    states applied)."""
    path = Path(path)
    verify(path)
    with naming(path), weights_only_torch_load():
        engine.load_checkpoint(str(path), tag="ds", load_optimizer_states=True, load_lr_scheduler_states=True)
    state = _read_state_files(path)
    set_rng_state(state["rng"])
    return state
