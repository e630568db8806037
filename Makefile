# One obvious command for each job. Everything installs itself into .venv from a fresh clone.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run reset test test-speed-off test-fast bench lint package install clean browser-deps

# Install output goes to stderr: `make bench` keeps stdout to its JSON lines.
$(STAMP): requirements.txt requirements-dev.txt requirements-infra.txt
	@echo "installing the requirements into $(VENV) (about a minute on a fresh clone)" >&2
	@test -x $(PY) || { echo "  creating $(VENV)" >&2; $(PYTHON) -m venv $(VENV) >&2; }
	@echo "  updating pip" >&2
	@# chalice (it packages with pip) requires pip<26.3: a newer pip would be installed, then downgraded.
	@$(PY) -m pip install --quiet --upgrade "pip<26.3" >&2
	@# local/install.py: a progress line per phase instead of pip's silence (--quiet) or its hundreds of lines.
	@$(PY) -m local.install -r requirements-dev.txt -r requirements-infra.txt
	@touch $(STAMP)

# Debian's Chromium for the browser tests (never a browser download of Playwright's own). Needs root;
# without it the browser tests skip with a visible reason. axe-core (npm, into node_modules/, git-ignored) for
# their accessibility checks.
browser-deps:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "chromium could not be installed: browser tests will be skipped"; \
		else echo "not root: install Debian's chromium to run the browser tests"; fi; }
	@test -f node_modules/axe-core/axe.min.js || { command -v npm >/dev/null \
		&& npm install --no-save --no-audit --no-fund --silent axe-core@4 >/dev/null \
		|| echo "axe-core could not be installed (npm): the accessibility checks of the browser tests will be skipped"; }

install: $(STAMP)

run: $(STAMP)
	$(PY) -m local

# Forget the local stack's data (users, orders, tables, queues, the PayPal emulator's state, the signing secret).
reset:
	@$(or $(wildcard $(PY)),$(PYTHON)) -m local.state

test: $(STAMP) browser-deps
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-speed-off

# The seat-lock and payment suites again with the moto server's speed work off: the locks must not depend on it.
SPEED_OFF_SUITES := tests/integration/test_seat_lock.py tests/integration/test_orders.py \
	tests/integration/test_purchase_worker.py tests/integration/test_refund_worker.py tests/integration/test_sweep.py
test-speed-off: $(STAMP)
	LOCAL_MOTO_SPEED=off $(PY) -m pytest $(SPEED_OFF_SUITES)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not e2e and not browser and not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	@$(PY) -m bench

lint: $(STAMP)
	$(PY) -m ruff check app.py chalicelib local tests infra bench tools
	$(PY) -m ruff format --check app.py chalicelib local tests infra bench tools
	$(PY) -m mypy app.py chalicelib

package: $(STAMP)
	$(PY) -m infra.package

clean:
	rm -rf $(VENV) .pytest_cache build chalice.out
