# Two commands on a fresh machine: `make bench` and `make test`. Each installs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu
# 1/GPU_SHRINK of paper-fast's sizes (1 epoch per model) for the scaled whole-bench estimate.
GPU_SHRINK ?= 20

.PHONY: install test test-all bench perf gpu-check lint smoke screenshots

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch/torchvision first: on these machines the 2.14.1 / 0.29.1 wheels come from local disk;
	# pyproject.toml itself only asks for ranges. --no-cache-dir: where the wheels are downloaded
	# instead (several GB: a CUDA build), a cached copy beside the installed one can fill a small disk.
	$(PY) -m pip install -q --disable-pip-version-check --no-cache-dir "torch==2.14.1" "torchvision==0.29.1" || \
	  $(PY) -m pip install -q --disable-pip-version-check --no-cache-dir "torch>=2.2" "torchvision>=0.17"
	$(PY) -m pip install -q --disable-pip-version-check --no-cache-dir -e ".[dev,cluster,zoo,corruptions]"
	@touch $(STAMP)

install: $(STAMP)

# The quick tier (under 4 minutes on 2 Xeon cores, 5 on 2 AVX2-only AMD EPYC cores; the README
# has the measures; tests/tiers.py says what it leaves out).
test: install
	$(PY) -m pytest -q -m "not slow"

# Everything, as CI runs it.
test-all: install
	$(PY) -m pytest -q

bench: install
	$(VENV)/bin/robustbench-lr bench --profile $(PROFILE)

smoke: install
	$(VENV)/bin/robustbench-lr bench --profile smoke

perf: install
	$(PY) benchmarks/run_all.py

# On a machine with a GPU: the CUDA tests (skipped elsewhere) and the CUDA benchmark sections.
gpu-check: install
	$(PY) -m pytest -q tests/test_cuda.py
	$(PY) benchmarks/attacks.py --device cuda
	$(PY) benchmarks/training.py --device cuda
	$(PY) benchmarks/projection.py --device cuda
	$(PY) benchmarks/paper_fast_device.py --device cuda --shrink $(GPU_SHRINK)

# A 1280x800 PNG of each page kind of the site built from $(PROFILE)'s results (reports/<profile>/site).
screenshots: install
	$(PY) -m robustbench_lr.site.screenshots reports/$(PROFILE) reports/$(PROFILE)/screenshots

lint: install
	$(VENV)/bin/ruff check robustbench_lr tests benchmarks
	$(VENV)/bin/ruff format --check robustbench_lr tests benchmarks
