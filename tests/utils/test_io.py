"""Atomic writes: a failure mid-write keeps the previous complete file or directory."""
from __future__ import annotations

import json

import pytest

from pipeline.utils.io import InputError, atomic_dir, atomic_open, read_json, read_jsonl, write_json, write_jsonl
from pipeline.utils.seeding import derive_seed


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "out.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(path) as fh:
            fh.write('{"a": 2, "trunc')
            raise RuntimeError("crash mid-write")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_dir_keeps_previous_dir(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as d:
        (d / "w.bin").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "w.bin").write_text("v2-partial")
            raise RuntimeError("crash")
    assert (target / "w.bin").read_text() == "v1"
    with atomic_dir(target) as d:
        (d / "w.bin").write_text("v2")
    assert (target / "w.bin").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_jsonl_roundtrip_and_bad_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    assert write_jsonl(path, [{"x": 1}, {"x": 2}]) == 2
    assert read_jsonl(path) == [{"x": 1}, {"x": 2}]
    path.write_text('{"x": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_derive_seed_is_stable():
    assert derive_seed(1, "a", 2) == derive_seed(1, "a", 2) != derive_seed(1, "a", 3)
    assert 0 <= derive_seed(123, "x") < 2**31


def test_regression_read_jsonl_line_numbers_and_unreadable_files(tmp_path):
    """Physical line numbers after blank lines; latin-1, NUL, a directory and a missing file each get one
    clear InputError naming the file (and line), never a raw UnicodeDecodeError or IsADirectoryError."""
    path = tmp_path / "rows.jsonl"
    path.write_text('{"x": 1}\n\n\n{oops\n')
    with pytest.raises(InputError, match=r"rows.jsonl:4: not valid JSON"):
        read_jsonl(path)
    path.write_bytes(b'{"x": 1}\n{"x": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"rows.jsonl:2: not UTF-8 text \(byte 0xe9 at column 11"):
        read_jsonl(path)
    path.write_bytes(b'{"x": 1}\n\x00\x00\n')
    with pytest.raises(InputError, match=r"rows.jsonl:2: contains a NUL byte"):
        read_jsonl(path)
    path.write_text("")
    assert read_jsonl(path) == []
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(InputError, match=r"d.jsonl: is a directory, not a file"):
        read_jsonl(tmp_path / "d.jsonl")
    with pytest.raises(InputError, match=r"none.json: file not found"):
        read_json(tmp_path / "none.json")
    (tmp_path / "l1.json").write_bytes(b'{"x": "\xe9"}')
    with pytest.raises(InputError, match=r"l1.json: not UTF-8 text"):
        read_json(tmp_path / "l1.json")


@pytest.mark.parametrize("code", [28, 30])  # ENOSPC, EROFS
def test_regression_disk_full_write_names_the_output_and_leaves_no_temp(tmp_path, monkeypatch, code):
    """A write that fails on a full (ENOSPC: fsync is where delayed allocation reports it) or read-only disk
    raises an OSError naming the output path, keeps the previous file and leaves no temp file behind."""
    import errno
    import os

    from pipeline.utils import io

    path = tmp_path / "out.json"
    write_json(path, {"a": 1})

    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(io.os, "fsync", fail)
    with pytest.raises(OSError) as err:
        write_json(path, {"a": 2})
    assert err.value.errno in (errno.ENOSPC, errno.EROFS) and err.value.filename == str(path)
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_regression_disk_full_inside_atomic_dir_removes_the_temp_dir(tmp_path):
    import errno

    with pytest.raises(OSError) as err:
        with atomic_dir(tmp_path / "model") as d:
            (d / "w.bin").write_text("partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.filename == str(tmp_path / "model") and list(tmp_path.iterdir()) == []
