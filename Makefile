# Two commands matter: `make run` (the whole stack on localhost) and `make test` (lint, types, tests).
PYTHON ?= python3
VENV ?= .venv
TOOLS ?= .venv-tools
SCAN ?= .venv-scan
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check -q

.PHONY: run test lint typecheck pytest deep template-check tools bench clean soak oracle-replay browser console-screens

$(VENV)/.installed: requirements/runtime.txt requirements/dev.txt requirements/constraints.txt pyproject.toml clients/python/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -c requirements/constraints.txt -r requirements/dev.txt
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -e .
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -e ./clients/python
	@touch $@

$(TOOLS)/.installed: requirements/tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install $(PIP_FLAGS) -r requirements/tools.txt
	@touch $@

$(SCAN)/.installed: requirements/scan.txt
	$(PYTHON) -m venv $(SCAN)
	$(SCAN)/bin/python -m pip install $(PIP_FLAGS) -r requirements/scan.txt
	@touch $@

tools: $(TOOLS)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/neruba local run $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check layers infra functions

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

template-check: $(TOOLS)/.installed $(SCAN)/.installed
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(TOOLS)/bin/sam validate --lint --template template.yaml
	$(TOOLS)/bin/cfn-lint template.yaml
	# every finding is fixed or skipped in the template with its reason (Metadata: checkov: skip)
	$(SCAN)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

# The console's browser tests drive Debian's chromium (never a downloaded browser): installed when missing
# and apt-get is there (CI runs as root on a fresh Debian machine).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the console's browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	elif [ ! -x $(CHROMIUM) ]; then \
		echo "no $(CHROMIUM): the console's browser tests are skipped (apt-get install chromium as root)"; \
	fi

# Screenshots of every console page into docs/console/ (docs/console.md shows them).
console-screens: $(VENV)/.installed browser
	$(PY) -m tests.support.console_screens

# Pytest's worker processes (pytest-xdist): `auto` is one per core (2 on CI), 0 runs every test in one
# process; tests sharing a stack or another costly fixture stay on one worker (docs/testing.md).
PYTEST_WORKERS ?= auto
pytest: $(VENV)/.installed $(TOOLS)/.installed browser
	NERUBA_TOOLS_VENV=$(TOOLS) $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test: lint typecheck template-check pytest

# The deep cases make test leaves out (docs/testing.md "Deep cases"): every kill point of the fault matrices
# beyond a covering set, and the property runs, storms and fuzzing at full size.
deep: $(VENV)/.installed $(TOOLS)/.installed browser
	NERUBA_TOOLS_VENV=$(TOOLS) $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --deep only $(PYTEST_ARGS)

# The oracle's long profile (docs/testing.md): random sequences for ORACLE_MINUTES minutes (default 30).
ORACLE_MINUTES ?= 30
soak: $(VENV)/.installed
	NERUBA_ORACLE_PROFILE=soak NERUBA_ORACLE_MINUTES=$(ORACLE_MINUTES) NERUBA_ORACLE_REPORT=.hypothesis/oracle-figures.json \
		$(PY) -m pytest tests/oracle -q -p no:randomly

# Replay the failing examples saved by a soak (.hypothesis/oracle), shrinking them to the minimum.
oracle-replay: $(VENV)/.installed
	NERUBA_ORACLE_PROFILE=replay $(PY) -m pytest tests/oracle -q -p no:randomly

bench: $(VENV)/.installed
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.billing_run
	$(PY) -m benchmarks.package_size
	$(PY) -m benchmarks.local_stack --out benchmarks/results/local_stack.json
	$(PY) -m benchmarks.report

clean:
	rm -rf $(VENV) $(TOOLS) $(SCAN) .pytest_cache .mypy_cache .ruff_cache .aws-sam
