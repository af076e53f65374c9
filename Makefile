# Speed-to-lead integrations. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The root (lib, tools) and each function's folder (its package), as in a bundle.
space := $() $()
FUNCTION_DIRS := $(patsubst %/main.py,$(CURDIR)/%,$(sort $(wildcard functions/*/main.py)))
export PYTHONPATH := $(subst $(space),:,$(CURDIR) $(FUNCTION_DIRS))

# What `make deploy` and `make test` depend on being installed.
DEPS_STAMP := $(VENV)/.deps-stamp
NPM_STAMP := node_modules/.npm-stamp

.PHONY: help install dev test check lint format typecheck bench soak soak-calls send-test-event logs evidence dnc sweep retry status report backfill doctor elevenlabs-webhook calendly-subscribe build deploy lock clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-18s %s\n", $$1, $$2}'

# requirements.lock constrains what the pinned packages pull in, so .venv holds exactly the
# versions the bundles ship (a newer release of a dependency never changes a fresh clone's venv).
$(DEPS_STAMP): requirements-dev.txt requirements.lock functions/*/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c requirements.lock
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(DEPS_STAMP) $(NPM_STAMP) ## Install the Python venv (.venv) and the pinned Supabase CLI

dev: install ## Run everything locally: functions at http://127.0.0.1:8080/functions/v1/<name> (STACK=supabase uses `supabase start`)
	$(PY) -m tools.stack.dev $(if $(STACK),--stack $(STACK))

test: install ## Run the test suite (starts its own throwaway stack)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff (lint and format check)
	$(VENV)/bin/ruff check lib functions tools tests
	$(VENV)/bin/ruff format --check lib functions tools tests

format: install ## Format the code with ruff
	$(VENV)/bin/ruff format lib functions tools tests
	$(VENV)/bin/ruff check --fix lib functions tools tests

typecheck: install ## mypy --strict on lib/ and the functions' packages, then each main.py as its bundle sees it
	$(VENV)/bin/mypy
	@set -e; for main in functions/*/main.py; do echo "mypy $$main"; $(VENV)/bin/mypy $$main; done

check: lint typecheck test ## Format check, lint, types and tests

bench: install ## Benchmark each function against its floor (same requests, none of our code), and speed to lead (docs/PERFORMANCE.md)
	$(PY) -m tools.bench $(BENCH_ARGS)

soak: install ## Load-and-fault run: 10,000 deliveries, SIGKILL, Postgres restart; fails on any loss (SOAK_ARGS=...)
	$(PY) -m tools.soak $(SOAK_ARGS)

soak-calls: install ## The call path under people, faults and 3 simulated days; fails on any broken call rule (SOAK_ARGS=...; docs/RELIABILITY.md)
	$(PY) -m tools.soak.calls $(SOAK_ARGS)

send-test-event: install ## Post a signed test event: PROVIDER=meta (default; LEADGEN_ID=...), calendly or elevenlabs; URL=..., ARGS="..." (python -m tools.ops.send_event PROVIDER --help)
	$(PY) -m tools.ops.send_event $(or $(PROVIDER),meta) $(if $(URL),--url $(URL)) $(if $(LEADGEN_ID),--leadgen-id $(LEADGEN_ID)) $(ARGS)

logs: install ## Latest integration_logs rows (PROVIDER=meta STATUS=error LIMIT=50), or one lead's trail (LEAD=id)
	$(PY) -m tools.ops.logs $(if $(LEAD),--lead $(LEAD)) $(if $(PROVIDER),--provider $(PROVIDER)) $(if $(STATUS),--status $(STATUS)) $(if $(LIMIT),--limit $(LIMIT))

dnc: install ## The do-not-call list: list it, ADD=<phone or email> [REASON=...], REMOVE=<phone or email> REASON=... (never deleted: a removal is stamped and logged)
	$(PY) -m tools.ops.dnc $(if $(ADD),--add "$(ADD)") $(if $(REMOVE),--remove "$(REMOVE)") $(if $(REASON),--reason "$(REASON)") $(if $(ALL),--all)

evidence: install ## One person's whole record for a complaint: leads, consents, calls with the rule that allowed each, opt-outs, do-not-call (LEAD=id)
	@test -n "$(LEAD)" || { echo "usage: make evidence LEAD=<lead id or its first 8 characters>" >&2; exit 2; }
	$(PY) -m tools.ops.evidence "$(LEAD)"

sweep: install ## Run the sweeps now (meta_webhook's, then place_call's), as the scheduler does (URL=... for one; ENV=production needs it)
	$(PY) -m tools.ops.sweep $(if $(URL),--url $(URL))

retry: install ## Fetch every pending lead now (after fixing a token or permission; `make doctor` says when)
	$(PY) -m tools.ops.sweep --retry-pending $(if $(URL),--url $(URL))

doctor: install ## Check configuration, database, migrations and the Meta token
	$(PY) -m tools.ops.doctor

report: install ## The funnel as one self-contained HTML page and a terminal summary: [SINCE=<date>] [UNTIL=<date>] [OUT=<file>] [FORM=|CAMPAIGN=|SOURCE=]
	$(PY) -m tools.ops.report $(if $(SINCE),--since "$(SINCE)") $(if $(UNTIL),--until "$(UNTIL)") $(if $(OUT),--out "$(OUT)") $(if $(FORM),--form "$(FORM)") $(if $(CAMPAIGN),--campaign "$(CAMPAIGN)") $(if $(SOURCE),--source "$(SOURCE)")

status: install ## One health summary: each provider's last success and failure, the queues and their oldest item, the daily recovery (exit 1 when something needs attention)
	$(PY) -m tools.ops.status

backfill: install ## Recover the leads the webhook never brought: SINCE=<date> [FORM=<form id>] (stored as the webhook would, queued, never twice)
	@test -n "$(SINCE)" || { echo "usage: make backfill SINCE=<date, e.g. 2026-12-01> [FORM=<form id>]" >&2; exit 2; }
	$(PY) -m tools.ops.backfill --since "$(SINCE)" $(if $(FORM),--form "$(FORM)")

elevenlabs-webhook: install ## Turn on the retries of the ElevenLabs webhook to place_call/webhook (off by ElevenLabs' default)
	$(PY) -m tools.ops.elevenlabs_webhook

calendly-subscribe: install ## Subscribe calendly_webhook to Calendly, key stored in supabase/.env (URL=... [SCOPE=organization|user] [RECREATE=1])
	@test -n "$(URL)" || { echo "usage: make calendly-subscribe URL=<functions base>/calendly_webhook [SCOPE=organization|user] [RECREATE=1]" >&2; exit 2; }
	$(PY) -m tools.ops.calendly_subscribe --url "$(URL)" $(if $(SCOPE),--scope $(SCOPE)) $(if $(RECREATE),--recreate)

build: install ## Build every function's bundle: build/functions/<name>/ (its folder, lib/, bytecode, requirements pinned from requirements.lock)
	$(PY) -m tools.build.bundle

deploy: install ## Deploy to production: migrations, every function (FUNCTION=<name>: one), the sweeps; DRY_RUN=1 prints the commands and runs none (ENV_FILE=supabase/.env)
	$(PY) -m tools.deploy $(if $(FUNCTION),--function $(FUNCTION)) $(if $(filter-out 0,$(DRY_RUN)),--dry-run) $(if $(ENV_FILE),--env-file $(ENV_FILE))

lock: install ## Pin the functions' packages from .venv into requirements.lock and functions/*/requirements.txt
	$(PY) -m tools.build.lock

clean: ## Remove the venv, node_modules and local state
	rm -rf $(VENV) node_modules .local build .pytest_cache .mypy_cache .ruff_cache
