# Two commands for a newcomer:  `make demo` (the platform) and `make test` (the lint, then the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BOOKS ?= books/demo
FAVA_PORT ?= 5000
API_PORT ?= 8000

.PHONY: setup lint test demo verify bench clean-books

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# ruff (style, import order, complexity), mypy (types) and the import contract (no cycle, no upward
# import); their configuration is in pyproject.toml. `make test` runs them first.
lint: setup
	$(VENV)/bin/ruff check ledger_service importers
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: setup lint
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/ledger-service platform --books $(BOOKS) --api-port $(API_PORT) --fava-port $(FAVA_PORT)

verify: setup
	$(VENV)/bin/ledger-service verify --books $(BOOKS)

# Every benchmark of BENCHMARKS.md at a size that fits in about 10 minutes on 2 cores; results go
# to $(BENCH_OUT), not over the full-size results in benchmarks/results/ (full commands: BENCHMARKS.md).
BENCH_OUT ?= bench-out
BENCH_FLAGS ?=  # e.g. --force: publish from a busy machine (benchmarks/loadgate.py)
bench: setup
	mkdir -p $(BENCH_OUT)
	$(PY) benchmarks/engine_events.py $(BENCH_FLAGS) --quick --out $(BENCH_OUT)/engine_events.json --md $(BENCH_OUT)/engine_events.md \
	    --profile-out $(BENCH_OUT)/engine_events_profile.txt
	$(PY) benchmarks/api_wrk.py $(BENCH_FLAGS) --db sqlite,postgresql --modes sync,threads8 --clients 8,64 --runs 1 --duration 5 \
	    --per-thread 20000 --out $(BENCH_OUT)/api_wrk.json --md $(BENCH_OUT)/api_wrk.md
	$(PY) benchmarks/api_orders.py $(BENCH_FLAGS) --workers 2 --clients 8,64 --orders 50 --out $(BENCH_OUT)/api_orders_sqlite.json
	$(PY) benchmarks/liabilities_close.py $(BENCH_FLAGS) --quick --out $(BENCH_OUT)/liabilities_close.json --md $(BENCH_OUT)/liabilities_close.md
	$(PY) benchmarks/close_touched.py $(BENCH_FLAGS) --quick --out $(BENCH_OUT)/close_touched.json --md $(BENCH_OUT)/close_touched.md
	$(PY) benchmarks/close_day.py $(BENCH_FLAGS) --sizes 1000,10000,100000 --days 3 --out $(BENCH_OUT)/close_day.json
	$(PY) benchmarks/verify_bench.py $(BENCH_FLAGS) --quick --out $(BENCH_OUT)/verify_bench.json
	$(PY) benchmarks/fava_load.py $(BENCH_FLAGS) --members 5000 --merchants 50 --orders-per-day 500 --days 5 \
	    --out $(BENCH_OUT)/fava_load.json --md $(BENCH_OUT)/fava_load.md
	$(PY) benchmarks/proofs.py $(BENCH_FLAGS) --sizes 1000,10000,100000 --runs 3 --out $(BENCH_OUT)/proofs.json --md $(BENCH_OUT)/proofs.md
	$(PY) benchmarks/demo_scale.py $(BENCH_FLAGS) --members 20000 --merchants 200 --orders-per-day 2000 --days 2 --remove \
	    --books $(BENCH_OUT)/demo-books --out $(BENCH_OUT)/demo_scale.json --md $(BENCH_OUT)/demo_scale.md

clean-books:
	rm -rf $(BOOKS)
