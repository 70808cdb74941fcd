"""The download stage with a fake hub: the pinned revision is what is fetched, files land where the GPU
profile reads them, records reach the eval manifest, and offline runs fail clearly or reuse copies."""
from __future__ import annotations

import types
from pathlib import Path

import huggingface_hub
import pytest

from pipeline.config import ConfigError, load_params
from pipeline.eval import manifest
from pipeline.stages import download
from pipeline.utils.io import read_json, read_jsonl
from tests.config.test_gpu_profiles import render

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self):
        self.snapshots, self.datasets, self.infos = [], [], []

    def snapshot_download(self, *, repo_id, revision, local_dir):
        self.snapshots.append((repo_id, revision))
        (Path(local_dir) / "config.json").write_text('{"model_type": "qwen2"}')
        return local_dir

    def load_dataset(self, path, name=None, split=None, revision=None):
        self.datasets.append((path, name, split, revision))
        return [{"problem": f"{path} q{i}", "answer": str(i)} for i in range(3)]

    def repo_info(self, repo, repo_type, revision):
        self.infos.append((repo, repo_type, revision))
        return types.SimpleNamespace(sha=SHA)


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    hub = FakeHub()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
    monkeypatch.setattr(datasets, "load_dataset", hub.load_dataset)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    return hub


def test_gpu_profile_download_lands_where_the_profile_reads(tmp_path, monkeypatch, fake_hub, capsys):
    monkeypatch.chdir(tmp_path)
    p = render("gpu", **{"hub.model.revision": SHA})
    records = download.run(p)
    assert fake_hub.snapshots == [("Qwen/Qwen2.5-Math-1.5B", SHA)]
    assert ("openai/gsm8k", "main", "train", SHA) in fake_hub.datasets and len(fake_hub.datasets) == 8
    assert [i[2] for i in fake_hub.infos] == ["main"] * 8  # branch names resolved; the pinned sha is not asked
    assert (tmp_path / p.model.name_or_path / "config.json").is_file()
    for path in [s.path for s in p.data.sources] + [b.path for b in p.eval.benchmarks]:
        assert len(read_jsonl(tmp_path / path)) == 3
    assert read_json(tmp_path / "hub/revisions.json") == records and all(r["commit"] == SHA for r in records)
    out = capsys.readouterr().out
    assert "revision 'main' is not pinned" in out and "Qwen/Qwen2.5-Math-1.5B revision" not in out


def test_records_reach_the_eval_manifest(tmp_path, monkeypatch, fake_hub):
    monkeypatch.chdir(tmp_path)
    p = render("gpu")
    download.run(p)
    man = manifest.build(model_path=p.model.name_or_path, sampling={}, template_hash="t", backend="hf",
                         benchmarks={"aime24": "hub/benchmarks/aime24.jsonl", "x": "elsewhere.jsonl"},
                         hub=manifest.hub_records(p.hub.dir))
    assert man["model_source"] == {"repo": "Qwen/Qwen2.5-Math-1.5B", "revision": "main", "commit": SHA,
                                   "config": None, "split": None}
    assert man["benchmarks"]["aime24"]["source"]["repo"] == "HuggingFaceH4/aime_2024"
    assert man["benchmarks"]["x"]["source"] is None and manifest.hub_records(tmp_path / "none") == []


def test_offline_rerun_reuses_copies_and_a_missing_one_fails_clearly(tmp_path, monkeypatch, fake_hub):
    monkeypatch.chdir(tmp_path)
    p = render("gpu")
    first = download.run(p)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = len(fake_hub.datasets)
    assert download.run(p) == first and len(fake_hub.datasets) == calls  # no hub call offline
    (tmp_path / "hub/benchmarks/amc23.jsonl").unlink()
    with pytest.raises(ConfigError, match="math-ai/amc23@main.*hub access is off.*make download"):
        download.run(p)


def test_embedded_profile_needs_no_network(tmp_path, monkeypatch, tiny_params_file):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download.run(load_params(tiny_params_file())) == []
    assert read_json(tmp_path / "hub/revisions.json") == []


def test_a_failed_snapshot_leaves_no_partial_model(tmp_path, monkeypatch, fake_hub):
    monkeypatch.chdir(tmp_path)

    def broken(**kwargs):
        (Path(kwargs["local_dir"]) / "half.safetensors").write_text("x")
        raise OSError("connection reset")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", broken)
    with pytest.raises(OSError, match="connection reset"):
        download.run(render("gpu"))
    assert not (tmp_path / "hub/models/Qwen2.5-Math-1.5B").exists()
    assert not list((tmp_path / "hub/models").glob("*.tmp"))



def test_regression_corrupt_revisions_json_raised_a_raw_json_error(tmp_path):
    """A corrupt <hub.dir>/revisions.json ended the evaluation with a JSONDecodeError traceback; it is now an
    InputError naming the file, which the stages print as one line and exit 2."""
    from pipeline.utils.io import InputError

    (tmp_path / "revisions.json").write_text('[{"repo": "a/b", ')
    with pytest.raises(InputError, match=r"revisions\.json: not valid JSON") as err:
        manifest.hub_records(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "revisions.json").write_text('{"repo": "a/b"}')
    with pytest.raises(InputError, match=r"revisions\.json: expected a list of download records\. Fix"):
        manifest.hub_records(tmp_path)
