# make demo: set up and run the demo on the embedded AWS.  make test: set up and run the whole suite.
VENV    := .venv
PY      := $(VENV)/bin/python
PYSTAMP := $(VENV)/.installed
NPMSTAMP := node_modules/.installed
PYTHON  ?= python3
# The suite runs in parallel, one worker per core up to two (CI has two cores; each worker has its own moto); a
# worker that runs out steals queued tests from the other (--dist worksteal), the long ones having gone first.
JOBS    ?= $(shell $(PYTHON) -c "import os; print(max(1, min(2, len(os.sched_getaffinity(0)))))")

.PHONY: setup demo test lint bench bench-scan soak clean

# uv installs what pyproject.toml asks for (the same versions pip resolves) in ~8 s, where pip took ~39 s on a fresh
# machine with no cache, mostly unpacking and byte-compiling pulumi_aws; modules compile when first imported.
$(PYSTAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip install --python $(PY) -q -e '.[dev]'
	touch $@

$(NPMSTAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(PYSTAMP) $(NPMSTAMP)

demo: $(PYSTAMP)
	$(VENV)/bin/asg-optimizer demo

lint: $(PYSTAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup lint
	$(VENV)/bin/pytest -q -n $(JOBS) --dist worksteal --durations=15

bench: $(PYSTAMP)
	$(PY) bench/swap_cost.py

bench-scan: $(PYSTAMP)
	$(PY) bench/scan_api_calls.py

soak: $(PYSTAMP)
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
