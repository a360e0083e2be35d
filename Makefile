# Two entry points on a fresh machine: `make demo` and `make test` (both set up what they need).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
MIN_VENV := .venv-min
MIN_STAMP := $(MIN_VENV)/.installed-stamp
ESTATE ?= examples/estate.json
SERVICE_TAGS ?= examples/ServiceTags_Public_20251028.json

.PHONY: setup demo test lint typecheck unit bench test-min-deps clean

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
	@echo "Same scan, other formats: --format json|markdown|html (report), azcli|bicep|terraform (the plan as code), e.g."
	@echo "  $(BIN)/python -m asr_remediate scan --estate $(ESTATE) --service-tags $(SERVICE_TAGS) --format terraform"

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy asr_remediate function_app.py examples

unit: setup
	$(BIN)/python -m pytest

test: setup lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(if $(SIZES),--sizes $(SIZES))

# The suite with every runtime dependency at exactly its lower bound in requirements.txt (a separate venv;
# the dev tools keep their pins, indirect dependencies resolve as usual). Not part of `make test`.
$(MIN_STAMP): requirements.txt requirements-dev.txt tools/min_constraints.py
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(PYTHON) tools/min_constraints.py requirements.txt > $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/python -m pip install --quiet -c $(MIN_VENV)/constraints.txt -r requirements-dev.txt
	touch $@

test-min-deps: $(MIN_STAMP) $(NODE_STAMP)
	$(MIN_VENV)/bin/python tools/min_constraints.py --check-installed requirements.txt
	$(MIN_VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) $(MIN_VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
