"""Checkpoints: the trainer state round-trips as JSON + safetensors, nothing read back can run code, the
manifest refuses changed files, `latest`/pruning, and a failed (full-disk) write leaves no temp dir."""
from __future__ import annotations

import errno
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.train import checkpoint
from pipeline.train.checkpoint import CheckpointError


class Evil:
    """Unpickling this writes a marker file: proof that a checkpoint ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


class FakeEngine:
    """DeepSpeed's checkpoint calls, loading the way DeepSpeed does (torch.load with weights_only=False)."""

    def __init__(self) -> None:
        self.weights = {"w": torch.arange(6, dtype=torch.float32)}
        self.loaded = None

    def save_checkpoint(self, directory, tag, save_latest):
        (Path(directory) / tag).mkdir(parents=True, exist_ok=True)
        torch.save(self.weights, Path(directory) / tag / "mp_rank_00_model_states.pt")

    def load_checkpoint(self, directory, tag, **kwargs):
        self.loaded = torch.load(Path(directory) / tag / "mp_rank_00_model_states.pt", weights_only=False)


def _state(step: int = 3) -> dict:
    gen = torch.Generator().manual_seed(7)
    return {"step": step, "cursor": 11, "skipped_steps": 0, "fingerprint": "abc",
            "regularizer": {"last_step": 2, "anchor": None, "generator": gen.get_state(),
                            "controller": {"alpha": 0.25, "updates": 3, "target": 1.5},
                            "online": {"p-1": 0.5, "p-2": 1.0}, "__tensor__": "not a tag", 4: ("a", 1.5)}}


def test_trainer_state_roundtrips_nested_tensors_and_rng_as_json_and_safetensors(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    engine = FakeEngine()
    path = checkpoint.save(engine, tmp_path, 3, _state())
    assert sorted(p.name for p in path.iterdir()) == ["COMPLETE", "MANIFEST.json", "ds", "trainer_state.json",
                                                      "trainer_state.safetensors"]
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    state = checkpoint.load(engine, path)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected  # every RNG continues exactly
    reg = state["regularizer"]
    assert torch.equal(reg["generator"], torch.Generator().manual_seed(7).get_state())
    assert reg["controller"] == {"alpha": 0.25, "updates": 3, "target": 1.5} and reg["anchor"] is None
    assert reg["online"] == {"p-1": 0.5, "p-2": 1.0} and reg["__tensor__"] == "not a tag" and reg[4] == ("a", 1.5)
    assert state["step"] == 3 and torch.equal(engine.loaded["w"], engine.weights["w"])
    assert checkpoint.read_state(path)["cursor"] == 11


def test_regression_pickled_code_in_checkpoint_runs_on_resume(tmp_path):
    """Regression (issue 13 item 5): a planted trainer_state.pt ran arbitrary code on resume, and DeepSpeed's
    files were unpickled the same way.  Neither a planted file, nor a swapped DeepSpeed file with a manifest
    rewritten to match, nor an old-format checkpoint ever executes."""
    marker = tmp_path / "pwned"
    engine = FakeEngine()
    path = checkpoint.save(engine, tmp_path / "ckpt", 2, _state(2))
    torch.save({"step": 2, "x": Evil(marker)}, path / "trainer_state.pt")  # planted beside a valid checkpoint
    assert checkpoint.read_state(path)["step"] == 2
    with pytest.raises(CheckpointError, match="trainer_state.pt is not in the save-time manifest"):
        checkpoint.load(engine, path)
    (path / "trainer_state.pt").unlink()

    torch.save({"w": Evil(marker)}, path / "ds/mp_rank_00_model_states.pt")  # swapped, manifest rewritten
    with pytest.raises(CheckpointError, match="mp_rank_00_model_states.pt does not match its sha256"):
        checkpoint.load(engine, path)
    checkpoint.write_manifest(path)
    with pytest.raises(CheckpointError, match="refusing to unpickle it"):
        checkpoint.load(engine, path)

    old = tmp_path / "old" / "step-000001"
    old.mkdir(parents=True)
    torch.save({"step": 1, "x": Evil(marker)}, old / "trainer_state.pt")
    (old / "COMPLETE").write_text("1")
    assert checkpoint.latest(old.parent) == old
    with pytest.raises(CheckpointError, match=r"no MANIFEST.json \(an old-format checkpoint with a pickled"):
        checkpoint.read_state(old)
    assert not marker.exists()


def test_manifest_refuses_changed_missing_and_added_files(tmp_path):
    engine = FakeEngine()
    path = checkpoint.save(engine, tmp_path, 1, _state())
    checkpoint.verify(path)
    data = json.loads((path / "trainer_state.json").read_text())
    data["cursor"] = 99
    (path / "trainer_state.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"trainer_state.json does not match its sha256 in MANIFEST.json"):
        checkpoint.read_state(path)
    path = checkpoint.save(engine, tmp_path, 2, _state())
    (path / "trainer_state.safetensors").unlink()
    with pytest.raises(CheckpointError, match="trainer_state.safetensors is missing"):
        checkpoint.read_state(path)
    path = checkpoint.save(engine, tmp_path, 3, _state())
    (path / "ds" / "link").symlink_to("/etc/passwd")
    with pytest.raises(CheckpointError, match="ds/link is a symlink"):
        checkpoint.load(engine, path)
    (path / "ds" / "link").unlink()
    (path / "MANIFEST.json").write_text(json.dumps({"sha256": {"/dev/zero": "0" * 64}}))
    with pytest.raises(CheckpointError, match="names '/dev/zero', outside the checkpoint"):
        checkpoint.load(engine, path)
    (path / "MANIFEST.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="MANIFEST.json is unreadable"):
        checkpoint.load(engine, path)
    (path / "MANIFEST.json").unlink()
    with pytest.raises(CheckpointError, match="no MANIFEST.json; refusing to load an unverifiable checkpoint"):
        checkpoint.load(engine, path)


def test_regression_nested_files_named_complete_or_manifest_were_never_verified(tmp_path):
    """Exclusions were by file name, so ds/COMPLETE or ds/MANIFEST.json could be changed or planted unseen;
    only the top-level marker and manifest are exempt."""
    engine = FakeEngine()
    path = checkpoint.save(engine, tmp_path, 1, _state())
    (path / "ds" / "COMPLETE").write_text("planted")
    with pytest.raises(CheckpointError, match="ds/COMPLETE is not in the save-time manifest"):
        checkpoint.verify(path)
    (path / "ds" / "MANIFEST.json").write_text("{}")
    checkpoint.write_manifest(path)  # both nested files are now part of the save
    assert {"ds/COMPLETE", "ds/MANIFEST.json"} <= set(json.loads((path / "MANIFEST.json").read_text())["sha256"])
    checkpoint.verify(path)
    (path / "ds" / "COMPLETE").write_text("tampered")
    with pytest.raises(CheckpointError, match="ds/COMPLETE does not match its sha256"):
        checkpoint.verify(path)


def test_latest_skips_incomplete_and_pruning_keeps_the_newest(tmp_path):
    assert checkpoint.latest(tmp_path / "none") is None
    engine = FakeEngine()
    for step in (1, 2, 3, 4):
        checkpoint.save(engine, tmp_path, step, _state(step), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000003", "step-000004"]
    (tmp_path / "step-000009").mkdir()  # no COMPLETE marker: a directory someone left, not a checkpoint
    (tmp_path / ".tmp-step-000005").mkdir()  # a write killed mid-way
    assert checkpoint.latest(tmp_path).name == "step-000004"
    checkpoint.save(engine, tmp_path, 5, _state(5), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000004", "step-000005", "step-000009"]
    checkpoint.save(engine, tmp_path, 5, _state(5), keep=2)  # rewriting a step replaces it
    assert checkpoint.read_state(tmp_path / "step-000005")["step"] == 5


@pytest.mark.parametrize("failure", ["torch", "safetensors"])
def test_regression_disk_full_leaves_half_written_temp_checkpoint(tmp_path, monkeypatch, failure):
    """Regression (issue 13 item 3): a failed checkpoint write left its temp dir filling the disk, and the
    libraries' errors (torch.save: "unexpected pos", safetensors: "os error 28") did not say why."""
    from collections import namedtuple

    engine = FakeEngine()
    checkpoint.save(engine, tmp_path, 1, _state(1))
    if failure == "torch":
        def broken(directory, tag, save_latest):
            (Path(directory) / tag).mkdir(parents=True)
            (Path(directory) / tag / "part.pt").write_bytes(b"x" * 1000)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

        monkeypatch.setattr(engine, "save_checkpoint", broken)
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr("pipeline.utils.io.shutil.disk_usage", lambda p: usage(10**9, 10**9, 0))
    else:
        def full(tensors, path):
            raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

        monkeypatch.setattr("safetensors.torch.save_file", full)
    with pytest.raises(OSError) as err:
        checkpoint.save(engine, tmp_path, 2, _state(2))
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / ".tmp-step-000002")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000001"]


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [0, 2])
def test_deepspeed_checkpoint_loads_with_weights_only_and_refuses_code(tmp_path, zero_stage):
    """A real DeepSpeed engine: its files load through the restricted unpickler (ZeRO-2 optimizer states
    included), and a model-state file swapped for a code-running pickle is refused even with a matching
    manifest."""
    from pipeline.models.tiny import build_tiny_model
    from pipeline.models.tokenizer import train_tokenizer
    from pipeline.train.distributed import init
    from pipeline.train.engine import deepspeed_config, initialize, policy

    init()
    tok = train_tokenizer(["Q: 1+1\nA: 2"] * 20, 300)

    def engine():
        model = build_tiny_model(tok, hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1,
                                 intermediate_size=128, max_position_embeddings=128, seed=len(str(tmp_path)))
        return initialize(model, deepspeed_config(micro_batch_size=2, world_size=1, lr=1e-3, weight_decay=0.0,
                                                  zero_stage=zero_stage, bf16=False, gradient_clipping=1.0))

    saved = engine()
    path = checkpoint.save(saved, tmp_path / "ckpt", 1, _state(1))
    with torch.no_grad():
        for p in policy(saved).parameters():
            p.add_(1.0)
    fresh = engine()
    checkpoint.load(fresh, path)
    reference = {k: v - 1.0 for k, v in policy(saved).state_dict().items()}
    for k, v in policy(fresh).state_dict().items():
        torch.testing.assert_close(v, reference[k], msg=k)
    marker = tmp_path / "pwned"
    target = next(path.glob("ds/*model_states.pt"))
    torch.save({"module": Evil(marker)}, target)
    checkpoint.write_manifest(path)
    with pytest.raises(CheckpointError, match="refusing to unpickle it"):
        checkpoint.load(fresh, path)
    assert not marker.exists()
