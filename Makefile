# Warmstart developer commands. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
REQS   := requirements/base.txt requirements/dev.txt requirements/tasks.txt
LOCK   := requirements/constraints.txt
STAMP  := $(VENV)/.installed
STORE  ?= local

.PHONY: install demo test lint plan clean

install: $(STAMP)

# Re-run only when the pins or pyproject change (idempotent).
$(STAMP): $(REQS) $(LOCK) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip==24.3.1
	$(PIP) install -q $(addprefix -r ,$(REQS)) -c $(LOCK)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	$(PY) -m app.demo --store $(STORE)

# The suite runs in TEST_WORKERS processes (pytest-xdist), one test file per process at a time (tests of
# a file share fixtures and servers); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: install
	$(VENV)/bin/ruff check app tests bench
	$(VENV)/bin/ruff format --check app tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache

# --- bench ---
# Checkpoint stall, transfer, resume latency and training outcomes, measured side by side (~20 min on
# 2 cores): writes bench/results.json, docs/benchmarks.md and docs/img/bench_*.png.
.PHONY: bench
bench: install
	$(PY) -m bench.run

# --- deploy --- (need a Docker engine; not part of `make test`, whose static deploy checks run anywhere)
IMAGE ?= warmstart:2.6.2-cu118

.PHONY: docker-build docker-lint compose-up bench-save

docker-build:
	docker build -t $(IMAGE) .

docker-lint: install
	$(VENV)/bin/hadolint Dockerfile

compose-up:
	test -f deploy/compose/credentials.env || cp deploy/compose/credentials.env.example deploy/compose/credentials.env
	docker compose up -d --build

bench-save: install
	$(PY) deploy/bench_save.py

# --- faults ---
# The fault-injection suite at full counts (50 kill -9, 20 SIGTERM), the multi-node scenarios (tests/multinode:
# two hosts in network namespaces, needs root; 6 notices, 6 node losses, 3 link cuts, 2->1->2; ~15 min)
# and the fuzz suite's long profile
# (FUZZ_EXAMPLES generated inputs per fuzz test, fresh each run), then docs/reliability.md from their
# figures. `make test` runs both reduced (the fuzz suite's derandomized "ci" profile, well under a minute).
# 300 examples take ~10 min on 2 cores; `make faults FUZZ_EXAMPLES=1000` ~30 min.
.PHONY: faults
FUZZ_EXAMPLES ?= 300
faults: install
	rm -rf runs/faults
	WS_FAULTS_FULL=1 WS_FAULTS_RESULTS=runs/faults $(PY) -m pytest -q -p no:cacheprovider tests/faults
	WS_FAULTS_FULL=1 WS_FAULTS_RESULTS=runs/faults $(PY) -m pytest -q -p no:cacheprovider tests/multinode
	WS_FUZZ_PROFILE=long WS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) WS_FUZZ_COLLECT=1 WS_FAULTS_RESULTS=runs/faults $(PY) -m pytest -q -p no:cacheprovider tests/fuzz
	$(PY) -m tests.faults.report runs/faults docs/reliability.md

# --- ocr ---
# The OCR demo: synthetic text lines -> cold train -> partial warm start to a changed dictionary ->
# export -> PaddleOCR's own predict_rec TextRecognizer (docs/ocr.md). Fonts come from matplotlib's
# bundled DejaVu set; `make ocr-fonts` (optional, needs root) installs Debian's fonts-dejavu-core.
.PHONY: ocr-demo ocr-fonts ocr-bench ocr-bench-v4
ocr-demo: install
	$(PY) -m app.tasks.ocr.demo

ocr-fonts:
	apt-get install -y --no-install-recommends fonts-dejavu-core

ocr-bench: install
	$(PY) bench/ocr_warm_vs_cold.py

# PP-OCRv4 recognition (svtr_lcnet): warm start onto a new charset vs cold, then training throughput with
# 0 and 1 data workers; each writes its own key of bench/results.json (docs/ocr.md). About 30 min on 2 cores.
ocr-bench-v4: install
	nice -n 5 $(PY) -m bench.ocr_ppocrv4_warm_vs_cold
	nice -n 5 $(PY) -m bench.ocr_ppocrv4_throughput

# --- gpu ---
# The GPU acceptance run (docs/gpu.md): each task kind with AMP (fp16, bf16 from compute capability 8.0)
# through train -> SIGTERM -> resume vs an uninterrupted run, the checkpoint stall, loop throughput and
# data wait, nvidia-smi and Paddle's CUDA/cuDNN facts -> $(GPU_CHECK_OUT)/report.{json,md}. Not part of
# `make test`. With nvidia-smi and docker on the host it runs in the image ($(IMAGE), its Paddle);
# otherwise with this checkout's Python, which on a machine without a GPU (or with .venv's CPU Paddle)
# prints one line saying so and exits 0. GPU_CHECK_PYTHON=/path/to/python (a venv with paddlepaddle-gpu)
# skips the install; GPU_CHECK_ARGS="--device cpu --quick" is the CPU test mode.
.PHONY: gpu-check gpu-check-image gpu-check-local
GPU_CHECK_OUT    ?= runs/gpu-check
GPU_CHECK_ARGS   ?=
GPU_CHECK_PYTHON ?=

gpu-check:
	@if command -v nvidia-smi >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory gpu-check-image; else $(MAKE) --no-print-directory gpu-check-local; fi

gpu-check-image:
	mkdir -p $(GPU_CHECK_OUT)
	docker run --rm --gpus all --user "$$(id -u):$$(id -g)" -e HOME=/out/.home \
	  -v "$(abspath $(GPU_CHECK_OUT)):/out" --entrypoint python $(IMAGE) -m app.gpucheck --out /out $(GPU_CHECK_ARGS)

gpu-check-local: $(if $(GPU_CHECK_PYTHON),,install)
	$(or $(GPU_CHECK_PYTHON),$(PY)) -m app.gpucheck --out $(GPU_CHECK_OUT) $(GPU_CHECK_ARGS)
