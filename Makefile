# qbsync — every command sets up what it needs by itself (a venv in .venv).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS := requirements-dev.txt layers/core/requirements.txt constraints.txt
PYTEST_ARGS ?=

.PHONY: help venv demo test test-unit test-integration test-e2e lint fmt up qbo-sim bench bench-cold-start bench-sample-firm bench-webhook-intake bench-costs bench-initial-sync build schemas openapi dead-letters redrive-dlq clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)

venv: $(STAMP) ## create .venv with every pinned dependency

demo: $(STAMP) ## run the whole stack locally against the QuickBooks simulator and sync a sample firm end to end
	$(PY) -m local.demo

test: $(STAMP) lint build ## set up, lint, check `sam build`, and run every test (unit, integration, e2e)
	@# Two sessions: unit tests use in-process moto (mock_aws), which resets the moto state of the process,
	@# and with it the moto server that integration and e2e tests share (tests/conftest.py refuses a mix).
	$(PY) -m pytest tests/unit -n 2 -q $(PYTEST_ARGS)
	$(PY) -m pytest tests/integration tests/e2e -n 2 --dist loadfile -q $(PYTEST_ARGS)

test-unit: $(STAMP) ## unit tests only (no network)
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

test-integration: $(STAMP) ## integration tests (real handlers on moto + the simulator)
	$(PY) -m pytest tests/integration -q $(PYTEST_ARGS)

test-e2e: $(STAMP) ## end-to-end tests against the local stack
	$(PY) -m pytest tests/e2e -q $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check), mypy, import contracts, docs/openapi.json up to date, template checks (cfn-lint, sam validate, asl-validator)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/core/qbsync local scripts bench
	@# the house: layers (handlers' routes → wiring → services → repositories | qbo → adapters → core), no package cycles
	PYTHONPATH=layers/core $(VENV)/bin/lint-imports --no-cache
	@# every handler is functions/<name>/app.py: one mypy run each, the layer on the path
	@for f in functions/*/app.py; do MYPYPATH=layers/core $(VENV)/bin/mypy --no-error-summary $$f || exit 1; done
	@# docs/openapi.json must match the handlers' routes (fix: make openapi)
	$(PY) scripts/gen_openapi.py --check
	bash scripts/validate-template.sh

fmt: $(STAMP) ## format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

up: $(STAMP) ## run the local stack (moto + handlers + local API + simulator) in the foreground
	$(PY) -m local.stack

qbo-sim: $(STAMP) ## run the QuickBooks Online simulator on port 8910
	$(PY) -m local.qbo_sim --port 8910

bench: $(STAMP) ## benchmarks; figures go to docs/benchmarks.md
	$(PY) -m bench.bench_qbo_sim
	$(PY) -m bench.bench_cold_start
	$(PY) -m bench.bench_webhook_intake
	$(PY) -m bench.bench_costs
	$(PY) -m bench.bench_initial_sync $(BENCH_INITIAL_SYNC_ARGS)

bench-cold-start: $(STAMP) ## each handler's cold-start import time against boto3 + Powertools (Python 3.13); docs/benchmarks.md
	$(PY) -m bench.bench_cold_start

bench-webhook-intake: $(STAMP) ## the webhook intake's warm handler time per Intuit POST against moto (p50/p95/p99); docs/benchmarks.md
	$(PY) -m bench.bench_webhook_intake

bench-costs: $(STAMP) ## AWS requests, QuickBooks requests and worker CPU per synced record, and throughput (the sample firm at scale 0.2); docs/benchmarks.md
	$(PY) -m bench.bench_costs

bench-initial-sync: $(STAMP) ## a ~10,000-record firm through the initial sync vs a one-call-at-a-time python-quickbooks script (BENCH_INITIAL_SYNC_ARGS="--records 1000" for a quick run); docs/benchmarks.md
	$(PY) -m bench.bench_initial_sync $(BENCH_INITIAL_SYNC_ARGS)

bench-sample-firm: $(STAMP) ## the demo's sample firm through the local stack (a few minutes); figures in docs/benchmarks.md
	$(PY) -m bench.bench_sample_firm

build: ## sam build without Docker (cp313 arm64 wheels)
	bash scripts/sam-build.sh

schemas: $(STAMP) ## regenerate docs/events/*.schema.json from the pydantic models
	$(PY) scripts/gen_event_schemas.py

openapi: $(STAMP) ## regenerate docs/openapi.json (the admin API) from the handlers' routes
	$(PY) scripts/gen_openapi.py

dead-letters: $(STAMP) ## count and list OutboundDLQ (redacted: detail type, firm, event id, problem; needs OUTBOUND_DLQ_URL)
	$(PY) scripts/redrive_dlq.py list

redrive-dlq: $(STAMP) ## move OutboundDLQ back to OutboundQueue after a fix (OUTBOUND_DLQ_URL, OUTBOUND_QUEUE_URL, SYNC_TABLE_NAME)
	$(PY) scripts/redrive_dlq.py redrive

clean: ## remove build and run artefacts (keeps the venvs)
	rm -rf .aws-sam .local-run .pytest_cache .ruff_cache .mypy_cache .hypothesis
