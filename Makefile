# Videoflix: `make up` runs the whole stack locally, `make test` runs every test. See README.md.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) scripts/stack.py
WORKERS ?=

.PHONY: help install keys up down status logs test test-unit test-e2e admin clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: ## install missing Debian packages and the .venv (idempotent)
	@scripts/install.sh

keys: install ## generate the RSA key pair and service token into var/keys (if absent)
	@$(PY) -m videoflix_shared.keys var/keys

up: install ## start the whole stack on http://127.0.0.1:8000 (WORKERS=n transcoders)
	@$(if $(WORKERS),TRANSCODER_WORKERS=$(WORKERS)) $(STACK) --profile dev up

down: ## stop everything `make up` started
	@$(STACK) --profile dev down

status: ## which processes of the local stack are running
	@$(STACK) --profile dev status

logs: ## follow the local stack's logs
	@tail -n 20 -F var/log/*.log

test: install ## unit tests of every service, then the e2e suite against a fresh test stack
	@scripts/test.sh

test-unit: install ## unit tests only (no stack needed)
	@PYTHONPATH=. $(VENV)/bin/pytest services shared gateway

test-e2e: install ## e2e suite only, against a fresh test stack
	@scripts/test.sh tests-e2e

admin: install ## create an active admin: make admin EMAIL=a@b.c PASSWORD=...
	@test -n "$(EMAIL)" -a -n "$(PASSWORD)" || { echo "usage: make admin EMAIL=... PASSWORD=..."; exit 2; }
	@eval "$$($(STACK) --profile dev env)" && $(STACK) --profile dev prepare >/dev/null && \
	  $(VENV)/bin/flask --app services.auth.app create-admin "$(EMAIL)" --password "$(PASSWORD)"

clean: down ## stop the stack and delete var/ (keys, media, mail, logs)
	rm -rf var
