"""Atomic file output: every artifact is written to a temporary sibling and renamed into place.

A crash or SIGKILL mid-write therefore leaves either the previous complete file or none, never a
truncated one.  Directory outputs (models, checkpoints) use the same rename trick on a temp directory.
A failed write (a full or read-only disk) removes its temp file or directory and raises an OSError that
names the output path.  Readers never execute code and name the file and line of what they reject.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temp file beside `path`; on clean exit fsync and rename it over `path`."""
    path = Path(path)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with naming(path), os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        with naming(path):
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Give an OSError raised inside without a file name (a write() or fsync() on a full disk) the name of
    the output being written, so the one-line error says which path ran out of space."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise


def as_disk_error(exc: BaseException, path: str | Path, low_bytes: int = 1 << 20) -> OSError | None:
    """`exc` from writing under `path` as an OSError naming `path`, when the cause is a full or read-only
    disk; None otherwise.  Libraries hide the errno (torch.save raises "unexpected pos ...", safetensors
    "I/O error ... (os error 28)"), so the disk is also asked directly: call this before removing what
    the failed write left behind, or the space it took is free again."""
    path = Path(path)
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code is None:
        for marker, err in (("os error 28", errno.ENOSPC), ("No space left", errno.ENOSPC),
                            ("os error 30", errno.EROFS), ("Read-only file system", errno.EROFS)):
            if marker in text:
                code = err
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if code is None:
        with contextlib.suppress(OSError):
            if shutil.disk_usage(existing).free < low_bytes:
                code = errno.ENOSPC
    if code is None and not os.access(existing, os.W_OK):
        code = errno.EACCES
    if code not in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return None
    return OSError(code, os.strerror(code), str(path))


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write("\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
            n += 1
    return n


class InputError(ValueError):
    """An input file that cannot be used as it is: the message names the file (and line) and the problem."""


def check_file(path: str | Path) -> Path:
    """`path` as a Path if it is a readable regular file; otherwise InputError saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file. Fix: point the setting at the file itself")
    if not path.exists():
        raise InputError(f"{path}: file not found")
    return path


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing, non-UTF-8 or invalid file raises InputError naming the file."""
    try:
        return json.loads(check_file(path).read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}). Fix: re-encode the file as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def scan_jsonl(path: str | Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, value, problem) for every non-blank line of a jsonl file; exactly one of value and
    problem is None.  Lines are split on b"\\n" only, so the number is the physical line an editor shows
    (blank lines count, a stray \\r does not start a line).  A bad line never stops the scan."""
    with open(check_file(path), "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            value, problem = _parse_line(raw, lineno == 1)
            if value is not None or problem is not None:
                yield lineno, value, problem


def _parse_line(raw: bytes, first: bool) -> tuple[Any, str | None]:
    try:
        text = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as exc:
        return None, (f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}; "
                      "is the file latin-1?). Fix: re-encode the file as UTF-8")
    if not text.strip():
        return None, None
    if "\x00" in text:
        return None, "contains a NUL byte (a corrupted or binary line)"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        tail = "; the last line looks truncated" if not raw.endswith(b"\n") else ""
        return None, f"not valid JSON ({exc.msg} at column {exc.colno}{tail})"
    if not isinstance(value, dict):
        return None, f"not a JSON object (a {type(value).__name__})"
    return value, None


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a jsonl file of objects; the first bad line raises InputError naming the file and line."""
    rows = []
    for lineno, value, problem in scan_jsonl(path):
        if problem is not None:
            raise InputError(f"{path}:{lineno}: {problem}")
        rows.append(value)
    return rows


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temp directory; on clean exit it replaces `path` (old content removed after)."""
    path = Path(path)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with naming(path):
            yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks (md5 is DVC's per-file hash)."""
    import hashlib

    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
