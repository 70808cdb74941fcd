# Two entry points for a fresh clone: `make repro` and `make test`.  Both create .venv and install
# everything on first use.  See README "Install" for what each step works around.
SHELL := /bin/bash
PY_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# CUDA present -> CUDA vllm extra; otherwise the CPU build of vLLM with CPU torch.
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
EXTRA := $(if $(HAS_CUDA),gpu,cpu)

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export TOKENIZERS_PARALLELISM := false
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_TELEMETRY := false
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_HOME := $(CURDIR)/.prefect
export VLLM_ENABLE_V1_MULTIPROCESSING := 0
export VLLM_CPU_KVCACHE_SPACE := 1
export DS_BUILD_OPS := 0
export DS_ACCELERATOR := $(if $(HAS_CUDA),cuda,cpu)

.PHONY: install test repro compare compare-short sweep bench profile download prefect-server serve-flows mlflow-ui clean-venv
CRON ?= 0 2 * * *
TIMEZONE ?= UTC

install: $(STAMP)

$(STAMP): pyproject.toml constraints/$(EXTRA).txt tools/placeholder_wheels.py
	test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=25" wheel "setuptools>=68,<81"
ifeq ($(EXTRA),cpu)
	$(PIP) install -q torch==2.13.0
	$(PY) tools/placeholder_wheels.py $(VENV)/placeholders
	$(PIP) install -q --no-deps $(VENV)/placeholders/*.whl
	$(PIP) install -q --no-build-isolation -c constraints/cpu.txt deepspeed
	$(PIP) install -q --find-links $(VENV)/placeholders -c constraints/cpu.txt -e ".[cpu,dev]"
else
	$(PIP) install -q -c constraints/gpu.txt torch
	$(PIP) install -q --no-build-isolation -c constraints/gpu.txt deepspeed
	$(PIP) install -q -c constraints/gpu.txt -e ".[gpu,dev]"
endif
	touch $(STAMP)

test: install
	$(PY) -m pytest -q --timeout 900

# The one target with hub access: DVC stage `download` fills hub/ with the model, datasets and benchmarks
# of params.yaml's `hub` section at their revisions (hub/revisions.json records the commits).  Every other
# target runs with HF_*_OFFLINE=1, so `make repro` afterwards needs no network.
download: install
	HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 TRANSFORMERS_OFFLINE=0 $(VENV)/bin/dvc repro download

# One MLflow parent run per `make repro`, with every stage run nested under it.
repro: install
	$(PY) -m pipeline.tracking wrap dvc-repro -- $(VENV)/bin/dvc repro dvc.yaml

# The arm x seed comparison (comparison/dvc.yaml): cells JOBS at a time through DVC, then
# reports/comparison.{md,json} and curves.  compare-short: one seed, compare.short_steps steps, untracked.
JOBS ?= 2
compare: install
	$(PY) -m pipeline.tracking wrap compare -- $(PY) -m pipeline.stages.compare_cells --jobs $(JOBS)

compare-short: install
	$(PY) -m pipeline.stages.compare_cells --short --jobs $(JOBS)

# Every compare.arms x compare.seeds cell as a queued DVC experiment of the root pipeline, run by one
# queue worker (README "DVC").  Queued runs execute in a temporary copy, so MLflow is pointed at this
# clone's store explicitly.  Follow with `dvc queue status`; results in `dvc exp show`.
sweep: install
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db} $(PY) -m pipeline.stages.queue_sweep

# Prefect: a local server, and the flows served to it on a schedule (see README).
prefect-server: install
	$(VENV)/bin/prefect server start --host 127.0.0.1

serve-flows: install
	PREFECT_API_URL=http://127.0.0.1:4200/api $(PY) -m flows.serve --cron "$(CRON)" --timezone "$(TIMEZONE)"

# `relocate` first: a moved or copied clone's mlflow.db still names the old clone's artifact folder.
mlflow-ui: install
	$(PY) -m pipeline.tracking relocate
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

bench: install
	$(PY) bench/entropy_memory.py
	$(PY) bench/rollout.py

# `make profile PROFILE=gpu` renders the schema defaults + the overlay profiles/gpu.yaml into params.yaml
# (PROFILE=embedded switches back).  It refuses while params.yaml holds edits; FORCE=1 keeps them in
# params.<profile>.local.yaml first.
profile:
	@test -x $(PY) || { echo "no $(PY): run make install first"; exit 2; }
	$(PY) -m pipeline.config.profiles $(PROFILE) $(if $(FORCE),--force)

clean-venv:
	rm -rf $(VENV)
