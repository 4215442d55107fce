# Two commands for a new user: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: run test lint bench clean install browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/spot-optimizer serve

# The dashboard's browser test drives Debian's chromium: installed when missing and we are root (a failure is
# tolerated, and the test skips, except under CI=true).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium for the dashboard's browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || [ "$$CI" != true ]; fi

test: $(STAMP) browser
	$(BIN)/python -m ruff check engine actors api tests bench
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/python -m ruff check engine actors api tests bench
	$(BIN)/python -m mypy

bench: $(STAMP)
	$(BIN)/python bench/learning.py
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/engine_tick.py
	$(BIN)/python bench/store.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/restart.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .pytest_cache data/*.db
