# The two commands of the README: `make run` and `make test`.
export UV_PYTHON_DOWNLOADS := never
UV ?= python3 -m uv
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install run test lint format screenshots

install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

run: install
	$(UV) run --frozen ehass db upgrade
	$(UV) run --frozen ehass seed-demo
	@echo "EHASS on http://$(HOST):$(PORT)  (web pages at /, API docs at /docs)"
	$(UV) run --frozen ehass serve --host $(HOST) --port $(PORT)

test: install
	@# axe-core for the web pages' accessibility scan, when Chromium is here to run it.
	@if [ -x /usr/bin/chromium ] && [ ! -f tests/web/node_modules/axe-core/axe.min.js ] \
	  && command -v npm >/dev/null 2>&1; then \
	  cd tests/web && npm ci --no-audit --no-fund --loglevel=error; fi
	$(UV) run --frozen ruff check src tests
	$(UV) run --frozen pytest $(PYTEST_ARGS)

# The scale-out test (tests/scale; `make test` leaves it out): nginx, configured from
# deploy/nginx.conf, in front of three `ehass serve` processes on MariaDB and Redis, all on
# 127.0.0.1. Each run creates and drops a database `ehass_scale_<random>` and uses Redis
# db 5 under a key prefix of its own. It fails when nginx, MariaDB or Redis is missing.
SCALE_DATABASE_URL ?= mysql+asyncmy://root@127.0.0.1:3306/ehass_scale
SCALE_REDIS_URL ?= redis://127.0.0.1:6379/5

.PHONY: test-scale
test-scale: install
	EHASS_TEST_DATABASE_URL="$(SCALE_DATABASE_URL)" EHASS_TEST_REDIS_URL="$(SCALE_REDIS_URL)" \
	  $(UV) run --frozen pytest tests/scale $(PYTEST_ARGS)

lint: install
	$(UV) run --frozen ruff check src tests
	$(UV) run --frozen ruff format --check src tests

format: install
	$(UV) run --frozen ruff format src tests
	$(UV) run --frozen ruff check --fix src tests

# Load benchmark (bench/README.md): make bench BENCH_ARGS="--rate 400 --duration 60"
BENCH_ARGS ?=

.PHONY: bench
bench: install
	$(UV) run --frozen python bench/run.py $(BENCH_ARGS)

# Phone (390x844) and desktop (1440x900) screenshots of each main page, for reviewers:
# the browser tests write them to docs/screenshots (needs /usr/bin/chromium and
# `npm ci` in tests/web, as .ci/run does).
screenshots: install
	EHASS_SCREENSHOTS=$(CURDIR)/docs/screenshots $(UV) run --frozen pytest tests/web/test_browser.py -q -k accessibility
