# The two commands a newcomer needs: `make run` (the app on its embedded defaults) and
# `make test` (the whole suite). Both make the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench browser-deps clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(BIN)/.installed
	$(BIN)/python app.py

# Browser tests drive Debian's chromium through chromium-driver; install them when missing.
browser-deps:
	@command -v chromedriver >/dev/null 2>&1 || { \
	  echo "chromium-driver is missing: installing chromium and chromium-driver"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

test: $(BIN)/.installed browser-deps
	$(BIN)/ruff check .
	DASH_TEST_CHROMEPATH=$${DASH_TEST_CHROMEPATH:-/usr/lib/chromium/chromium} \
	  $(BIN)/python -m pytest --headless -p no:cacheprovider $(PYTEST_ARGS) tests

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed
	$(BIN)/python bench/ingest_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
