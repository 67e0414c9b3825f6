# Two commands a newcomer needs: `make demo` and `make test`. Each builds what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.PHONY: demo test test-slow test-fast lint bench install browser clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e ".[standin,dev]"
	touch $(STAMP)

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

install: $(STAMP) $(NPM_STAMP)

## Debian's Chromium for the browser tests of `aumwatch serve` (Playwright drives it; it never
## downloads a browser). Installed when missing and we may (root with apt-get); else the
## browser tests are skipped with that reason (outside CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "chromium is not installed: the aumwatch serve browser tests will be skipped"

## Open the dashboard on the local Azure stand-in (no Azure account needed).
demo: install
	$(BIN)/aumwatch demo

## The whole test suite except the long runs: unit, integration (stand-in + Azurite, started
## by the tests), app, the CI-sized reliability suite.
test: install browser lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

## The long runs only (fuzzing at scale, 200 kill -9s, 6 simulated hours of soak).
test-slow: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow

## Unit and app tests only: no stand-in, no Azurite, so only the Python install is needed.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not integration and not slow"

## The import-layering contracts are not run here: tests/test_layering.py runs lint-imports
## (with the rest of the suite), so `make test` checks them once.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy services widgets tui

## Benchmarks (bench/README.md): `make bench`, or `make bench ARGS=--quick` for the smoke run.
bench: install
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) node_modules .pytest_cache
