# Two entry points on a fresh machine: `make demo` and `make test` (both set up what they need).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
ESTATE ?= examples/estate.json
SERVICE_TAGS ?= examples/ServiceTags_Public_20251028.json

.PHONY: setup demo test lint typecheck unit bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(STAMP) $(NODE_STAMP)

# Scan the bundled example estate offline: findings per VM and the verified plan (exit code 2 = drift found).
demo: $(STAMP)
	@$(BIN)/python -m asr_remediate scan --estate $(ESTATE) --service-tags $(SERVICE_TAGS); \
	  code=$$?; if [ $$code -eq 2 ]; then echo "(exit code 2: drift found, as expected for the example estate)"; \
	  elif [ $$code -ne 0 ]; then exit $$code; fi

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy asr_remediate function_app.py examples

unit: setup
	$(BIN)/python -m pytest

test: setup lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
