"""DVC stage `download` (`make download`): local copies of the hub model and datasets, pinned by revision.

`hub.model` is snapshotted at its revision into `hub.model.local` (`huggingface_hub.snapshot_download`);
each of `hub.datasets` has one split loaded at its revision (`datasets.load_dataset`) and written as jsonl
to its `local` path, where the GPU profile's sources and benchmarks read it.  Each revision (a branch, tag
or commit) is first resolved to the commit it names, that commit is what is fetched, and
`<hub.dir>/revisions.json` records both; the eval manifest copies the records.  A revision that is not a
40-hex commit is fetched but reported as unpinned.

Only this target runs with hub access (the Makefile exports HF_*_OFFLINE=1 for every other one), so
`dvc repro` afterwards runs offline.  An item already present with the same record is kept without any
network access (DVC's `persist` keeps `hub/` between runs), so adding a dataset does not re-fetch the
model.  Copies are written to a temporary sibling and renamed into place.  With nothing configured (the
embedded profile) the stage writes an empty record.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.config import ConfigError, Params
from pipeline.stages.common import main_guard
from pipeline.utils.io import atomic_dir, read_json, write_json, write_jsonl

READS = ("hub",)
RECORD = "revisions.json"
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def resolve_commit(repo: str, revision: str, repo_type: str) -> str:
    """The commit sha `revision` names on the hub (asks the hub unless it already is one)."""
    if COMMIT.match(revision):
        return revision
    from huggingface_hub import HfApi

    return HfApi().repo_info(repo, repo_type=repo_type, revision=revision).sha


def fetch_model(item, commit: str) -> None:
    from huggingface_hub import snapshot_download

    with atomic_dir(item.local) as tmp:
        snapshot_download(repo_id=item.repo, revision=commit, local_dir=str(tmp))


def fetch_dataset(item, commit: str) -> int:
    import datasets

    rows = datasets.load_dataset(item.repo, name=item.config, split=item.split, revision=commit)
    return write_jsonl(item.local, (dict(r) for r in rows))


def _key(item, kind: str) -> dict:
    return {"kind": kind, "repo": item.repo, "revision": item.revision, "config": item.config,
            "split": item.split, "local": item.local}


def _present(item, kind: str, previous: list[dict]) -> dict | None:
    """The earlier record of exactly this item, if its copy is still on disk."""
    for rec in previous:
        if {k: rec.get(k) for k in _key(item, kind)} == _key(item, kind) and Path(item.local).exists():
            return rec
    return None


def run(params: Params) -> list[dict]:
    hub = params.hub
    items = ([("model", hub.model)] if hub.model else []) + [("dataset", d) for d in hub.datasets]
    record_path = Path(hub.dir) / RECORD
    previous = read_json(record_path) if record_path.is_file() else []
    records = []
    for kind, item in items:
        rec = _present(item, kind, previous)
        if rec is None:
            if _offline():
                raise ConfigError(f"hub.{'model' if kind == 'model' else 'datasets'}: {item.repo}@{item.revision} "
                                  f"is not in {item.local} and hub access is off (HF_HUB_OFFLINE=1). Fix: run "
                                  "`make download` once (the only target with hub access), or `dvc pull` hub/")
            commit = resolve_commit(item.repo, item.revision, kind)
            rows = fetch_model(item, commit) if kind == "model" else fetch_dataset(item, commit)
            rec = {**_key(item, kind), "commit": commit, **({"rows": rows} if kind == "dataset" else {})}
            print(f"download: {item.repo}@{commit[:12]} -> {item.local}")
        if not COMMIT.match(item.revision):
            print(f"download: {item.repo} revision {item.revision!r} is not pinned; it resolved to "
                  f"{rec['commit']} -- set that sha as its revision in params to pin it")
        records.append(rec)
    Path(hub.dir).mkdir(parents=True, exist_ok=True)
    write_json(record_path, records)
    print(f"download: {len(records)} item(s) recorded in {record_path}")
    return records


if __name__ == "__main__":
    main_guard(run, "download")
