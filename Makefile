# The two commands of the README: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench

# uv installs the 5 GB of torch and its CUDA libraries in a fraction of pip's time. It does not
# read pip's configuration, so a constraint file set there (a machine's cap on torch, say) is
# passed on. Unlike pip it compiles no bytecode unless asked: with PYTHONDONTWRITEBYTECODE set,
# every process would then compile torch, eva and MONAI anew (the end-to-end tests took 1.7x).
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet uv
	constraint=$$($(VENV)/bin/python -m pip config list | sed -n "s/^global.constraint='\(.*\)'$$/\1/p"); \
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(VENV)/bin/python \
		$${constraint:+--constraint "$$constraint"} -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/coralbay demo

# The quick tests first, then the end-to-end jobs (marked slow). worksteal: an idle worker takes
# tests the busy one has not started, so one long job does not hold up the rest.
PYTEST := $(VENV)/bin/python -m pytest -n 2 --dist worksteal --durations=15

# The second runs even when the first fails, so that one run reports every failure.
test: $(STAMP)
	$(PYTEST) -m "not slow"; quick=$$?; $(PYTEST) -m slow; slow=$$?; \
	test $$quick -eq 0 && test $$slow -eq 0

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/pyright

bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks
