#!/usr/bin/env bash
# The GPU check of issue 15, in one call, in this order:
#   smoke    the gpu-smoke profile end to end (`dvc repro`; without dvc installed, dvc.yaml's stage commands
#            in its order): random Qwen2.5-1.5B-architecture model, HF backend where vLLM is absent
#   zero2    bench/train_step_gpu.py at ZeRO-2 (bf16, micro-batch 8, 64 x 1,024 tokens per step)
#   zero3    the same at ZeRO-3
#   entropy  bench/entropy_memory.py on CUDA (logprob, clamped, nucleus; 8,192 tokens, hidden 1,536, chunk 1,024)
# Each step has its own time limit and all of them one deadline (BUDGET_S, default 540 s), so the call ends
# inside the device tool's 600 s; a step that would start with less than MIN_S left is skipped, not cut.
# STEPS picks steps for a rerun, e.g. STEPS="zero3 entropy".  Packages the machine lacks travel as .whl/
# (bench/gpu_wheels.sh, then carry=[".whl"]).  Output: $OUT/gpu_check.log, summary.txt, smoke_metrics.json,
# entropy_memory_cuda.json.  Usage: bash bench/gpu_check.sh
set -u -o pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
START=$(date +%s)
DEADLINE=$((START + ${BUDGET_S:-540}))
MIN_S=${MIN_S:-45}
STEPS=${STEPS:-"smoke zero2 zero3 entropy"}
PY=${PY:-python3}

# The Makefile's environment: offline, one thread per process for the CPU-side pools, CUDA accelerator.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false DVC_NO_ANALYTICS=1 DO_NOT_TRACK=1 \
    MLFLOW_ENABLE_TELEMETRY=false VLLM_ENABLE_V1_MULTIPROCESSING=0 DS_BUILD_OPS=0 DS_ACCELERATOR=${DS_ACCELERATOR:-cuda} \
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
# dvc.yaml's commands say `python`; some images only have python3 (a wrapper, not a link: a link to a
# virtual environment's interpreter would lose the environment).
mkdir -p /tmp/gpu_check_bin && rm -f /tmp/gpu_check_bin/python && printf '#!/bin/sh\nexec "%s" "$@"\n' "$(command -v "$PY")" >/tmp/gpu_check_bin/python
chmod +x /tmp/gpu_check_bin/python
export PATH=/tmp/gpu_check_bin:$PATH

if compgen -G ".whl/*" >/dev/null; then
    echo "== installing carried packages from .whl/"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu_check_site .whl/*.whl &&
        "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
            --target /tmp/gpu_check_site .whl/*.tar.gz
    export PYTHONPATH=$PYTHONPATH:/tmp/gpu_check_site PATH=$PATH:/tmp/gpu_check_site/bin
fi
nvidia-smi -L || true
"$PY" - <<'EOF'
import importlib.metadata as m
found = {}
for name in ("torch", "transformers", "deepspeed", "vllm", "dvc", "math-verify"):
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        found[name] = None
print("versions:", found)
EOF

step() {  # step NAME LIMIT_S COMMAND...: run with min(LIMIT_S, time left), record rc and seconds
    local name=$1 limit=$2 left
    shift 2
    left=$((DEADLINE - $(date +%s)))
    if [[ " $STEPS " != *" $name "* ]]; then return; fi
    if ((left < MIN_S)); then
        echo "== $name: SKIPPED ($left s left)" | tee -a "$OUT/summary.txt"
        return
    fi
    ((limit > left)) && limit=$left
    echo "== $name (limit $limit s): $*"
    local t0 rc
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@"
    rc=$?
    echo "== $name: rc $rc in $(($(date +%s) - t0)) s$( ((rc == 124)) && echo ' (TIMED OUT)')" | tee -a "$OUT/summary.txt"
}

smoke() {
    # the overlay rendered over the schema defaults into a complete params.yaml, as DVC needs every key
    "$PY" -c 'import yaml; from pipeline.config import load_params, to_dict
open("params.yaml", "w").write(yaml.safe_dump(to_dict(load_params("profiles/gpu-smoke.yaml")), sort_keys=False))' || return 1
    if "$PY" -c "import dvc" 2>/dev/null; then
        git rev-parse --is-inside-work-tree >/dev/null 2>&1 || "$PY" -m dvc config --local core.no_scm true
        "$PY" -m dvc config --local cache.type hardlink,symlink
        "$PY" -m dvc repro || return 1
    else
        echo "dvc is not installed here: running dvc.yaml's stage commands in its order"
        "$PY" - <<'EOF' || return 1
import shlex, subprocess, sys, time, yaml
for name, stage in yaml.safe_load(open("dvc.yaml"))["stages"].items():
    t0 = time.time()
    rc = subprocess.call(shlex.split(stage["cmd"]))
    print(f"== stage {name}: rc {rc} in {time.time() - t0:.0f} s", flush=True)
    if rc:
        sys.exit(rc)
EOF
    fi
    "$PY" - "$OUT/smoke_metrics.json" <<'EOF'
import glob, json, sys
json.dump({p: json.load(open(p)) for p in sorted(glob.glob("metrics/*.json"))}, open(sys.argv[1], "w"), indent=1)
EOF
}

export -f smoke
export PY OUT
step smoke "${SMOKE_S:-330}" bash -c smoke
step zero2 "${STEP_S:-75}" "$PY" bench/train_step_gpu.py --zero 2 --steps 2
step zero3 "${STEP_S:-75}" "$PY" bench/train_step_gpu.py --zero 3 --steps 2
step entropy "${ENTROPY_S:-90}" "$PY" bench/entropy_memory.py --device cuda --tokens 8192 --hidden 1536 \
    --chunk 1024 --json "$OUT/entropy_memory_cuda.json"
echo "== total $(($(date +%s) - START)) s"
