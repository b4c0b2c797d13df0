# The README's two commands, `make repro` and `make test`, set up everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen
DATASET_DIR := /usr/share/datasets/fashion-mnist

.PHONY: help setup dataset repro repro-photos demo evaluate test lint format mlflow-ui clean-checkpoints
.PHONY: browser serve register bench bench-serve bench-prepare bench-photos bench-docs train-ddp ablation
.PHONY: faults bench-limits modes sweep gpu-check sr-ceiling

MODEL ?= gan
NPROC ?= 2
# several machines: torchrun's rendezvous arguments; empty: this machine, listening on loopback only
TORCHRUN_ARGS ?=

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet uv

setup: $(if $(findstring .tools/bin/uv,$(UV)),.tools/bin/uv) dataset  ## uv (if missing), the locked venv, the dataset
	$(UV) sync --frozen --compile-bytecode  # .pyc once: stages start seconds faster

# Offline machines: the Debian package holds the real Fashion-MNIST IDX files.
dataset:
	@if ls $(DATASET_DIR)/train-images-idx3-ubyte* >/dev/null 2>&1 || \
	    ls data/raw/fashion_mnist/train-images-idx3-ubyte* >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's dataset-fashion-mnist (Fashion-MNIST IDX files)"; \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null)) || \
	  echo "warning: could not install dataset-fashion-mnist; prepare will try a download"; \
	fi

repro: setup  ## run the whole pipeline (dvc repro); its wall time -> reports/bench/repro.json
	$(RUN) python tools/timed_repro.py

# A profile: its own params.yaml and dvc.yaml (tools/profile_dvc.py) under profiles/<name>/.
repro-photos: setup  ## the photo profile: 4x SR and the CycleGAN on packaged photos -> profiles/photos/
	cd profiles/photos && $(abspath $(UV)) run --frozen python ../../tools/timed_repro.py
	$(RUN) python tools/profile_docs.py photos

# The demo profile: a Fashion-MNIST subset, four families at short budgets; then the service.
demo: setup  ## a quick profile trained in minutes, then the page on http://127.0.0.1:8000
	$(RUN) python tools/demo.py $(DEMO_ARGS)

bench: setup  ## training throughput (Trainer vs a bare loop), data wait, evaluate cost -> reports/bench/train.json
	$(RUN) python tools/bench.py

bench-prepare: setup  ## prepare 50,000 RGB PNG files of 32x32 (CIFAR-10's size) -> reports/bench/prepare.json
	$(RUN) python tools/bench_prepare.py

sr-ceiling: setup  ## the photo profile's PSNR ceiling: its SRResNet trained on the held-out photos -> profiles/photos/reports/
	$(RUN) python tools/sr_ceiling.py
	$(RUN) python tools/profile_docs.py photos

bench-photos: setup  ## only the photo upscaler's part of bench-serve (latency, 2,000 px in tiles, HTTP)
	$(RUN) python tools/bench_serve.py --only photos

# The figures section of docs/benchmarks.md; every bench tool also renders it when it finishes.
bench-docs: $(if $(findstring .tools/bin/uv,$(UV)),.tools/bin/uv)  ## render docs/benchmarks.md from reports/bench/*.json
	$(RUN) python tools/bench_docs.py

# GAN losses at an equal budget, as experiments on DVC's queue; e.g. ABLATION_ARGS="--steps 3748"
ablation: setup  ## the GAN loss ablation -> reports/ablation/gan.{json,md}
	$(RUN) python tools/ablation.py $(ABLATION_ARGS)

# On a CUDA machine: every family in float32 and bf16+channels-last+compile, DDP over NCCL, the timed pipeline
gpu-check: setup  ## the GPU path checked on a CUDA machine -> reports/bench/gpu.json
	$(RUN) dvc repro prepare
	$(RUN) python tools/gpu_check.py $(GPU_CHECK_ARGS)

# Experiments on DVC's queue, e.g. SWEEP_ARGS='--set "models.gan.lr=0.0002" --set "models.gan.lr=0.001" evaluate@gan'
sweep: setup  ## queue one experiment per --set (dvc exp run --queue), run them (dvc queue start -j), wait
	$(RUN) python tools/sweep.py $(SWEEP_ARGS)

# Mode collapse on the papers' 2-D mixtures, every loss and technique, 10 seeds; e.g. MODES_ARGS="--updates 1000"
modes: setup  ## ring of 8 and grid of 25: modes, high-quality share, KL, oscillation -> reports/modes.{json,md}
	$(RUN) python tools/modes.py $(MODES_ARGS)

evaluate: setup  ## evaluate every instance and print the metrics table
	$(RUN) dvc repro report
	@$(RUN) python pipeline/report.py --print-only

# Two pytest-xdist workers, one test file each at a time (module fixtures are built once): the
# end-to-end DAG on one worker while the other takes the unit tests. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: setup lint browser  ## ruff, then the whole pytest suite (unit + end-to-end)
	$(RUN) pytest -q -n $(TEST_WORKERS) --dist loadfile

# The tests marked `faults` (part of `make test` too), each case's outcome written down.
faults: setup  ## malformed requests, kill points, corrupt files: each case -> reports/faults.json
	$(RUN) pytest -q -m faults -n $(TEST_WORKERS) --dist loadfile --faults-report=reports/faults.json

bench-limits: setup  ## serve's memory and latency under 32 /upscale clients, per limit -> reports/bench/limits.json
	$(RUN) python tools/bench_limits.py

# The web page's end-to-end test drives Debian's headless Chromium through chromedriver.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium and chromium-driver (the web page's browser test)"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq chromium chromium-driver >/dev/null)) || \
	  echo "warning: could not install chromium; the browser test will fail"; \
	else \
	  echo "warning: no /usr/bin/chromium or chromedriver; install chromium and chromium-driver"; \
	fi

# One instance on NPROC processes with PyTorch's DistributedDataParallel (gloo on CPU, nccl on
# CUDA). Several nodes: TORCHRUN_ARGS="--nnodes 2 --node_rank 0 --rdzv_endpoint host:29500".
train-ddp: setup  ## train MODEL (an instance) on NPROC processes (several machines: TORCHRUN_ARGS)
	$(RUN) $(if $(strip $(TORCHRUN_ARGS)),torchrun $(TORCHRUN_ARGS) --nproc_per_node,python -m genmodels.training.launch --nproc) $(NPROC) pipeline/train.py --instance $(MODEL)

serve: setup  ## the inference service and its web page on http://127.0.0.1:8000 (params serve)
	$(RUN) genmodels serve $(SERVE_ARGS)

register: setup  ## register the exported graphs in MLflow; champion behind the quality gates
	$(RUN) dvc repro register

bench-serve: setup  ## onnxruntime vs eager, HTTP under load, the photo upscaler -> reports/bench/serve.json
	$(RUN) python tools/bench_serve.py

lint: setup  ## ruff check and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: setup  ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

mlflow-ui: setup  ## the MLflow UI on http://127.0.0.1:5000
	$(RUN) mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean-checkpoints:  ## drop resumable checkpoints of interrupted runs
	rm -rf checkpoints
