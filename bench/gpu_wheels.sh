#!/usr/bin/env bash
# Fetch, here (PyPI reachable), the packages the lent GPU machines lack for bench/gpu_check.sh, into .whl/
# (git-ignored): Python 3.12 x86-64 wheels, and DeepSpeed's source distribution (built there against the
# machine's own torch, with DS_BUILD_OPS=0).  Then carry the folder: run(command="bash bench/gpu_check.sh",
# carry=[".whl"]).  The machines have torch, numpy, safetensors, tokenizers, pyyaml, matplotlib, sympy and
# tqdm; not DeepSpeed, pydantic, math-verify, dvc or mlflow (gpu-smoke turns tracking off; without dvc the
# check runs dvc.yaml's stage commands in order).
set -euo pipefail
DEST=${1:-.whl}
mkdir -p "$DEST"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$DEST" \
    transformers==5.19.0 tokenizers==0.23.3 huggingface-hub==2.4.0 hjson==3.1.0 pydantic==2.14.4 \
    pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 math-verify==0.9.0 \
    latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2
python3 -m pip download -q --no-deps --no-binary=:all: -d "$DEST" deepspeed==0.19.8
du -sh "$DEST"
