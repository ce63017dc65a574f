# Two commands for a newcomer:  `make demo` (the platform) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BOOKS ?= books/demo
FAVA_PORT ?= 5000
API_PORT ?= 8000

.PHONY: setup test demo verify bench clean-books

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

test: setup
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/ledger-service platform --books $(BOOKS) --api-port $(API_PORT) --fava-port $(FAVA_PORT)

verify: setup
	$(VENV)/bin/ledger-service verify --books $(BOOKS)

# The benchmarks at a size that fits in about 10 minutes on 2 cores (full sizes: BENCHMARKS.md).
bench: setup
	$(PY) benchmarks/close_day.py --sizes 1000,10000,100000 --days 3
	$(PY) benchmarks/api_orders.py --workers 2 --clients 8,64 --orders 100

clean-books:
	rm -rf $(BOOKS)
