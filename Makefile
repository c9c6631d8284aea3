# The two commands a fresh machine needs: `make run` and `make test`. Both set everything up.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0

.PHONY: run test bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Base install: what the daemon needs (no torch).
$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Tests also train and export tiny models: torch (CPU wheel, pinned so pip never resolves a
# multi-GB CUDA build), then the train and dev extras.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[train,dev]'
	# Type stubs of TensorRT for tests/test_trt_typing.py; --no-deps because the package requires
	# tensorrt itself, which only installs from NVIDIA's index on a CUDA machine.
	$(BIN)/pip install -q --no-deps tensorrt-stubs==10.13.0.35.1
	touch $@

run: $(VENV)/.base
	$(BIN)/stylecast serve --source demo

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

bench: $(VENV)/.base
	$(BIN)/stylecast bench --json docs/bench-latest.json

lint: $(VENV)/.dev
	$(BIN)/ruff check streamer engines training tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
