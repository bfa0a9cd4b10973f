# Videoflix: `make up` runs the whole stack locally, `make test` runs every test. See README.md and docs/.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) scripts/stack.py
WORKERS ?=
STORAGE ?=
# The production path: Docker Compose v2.24+ (`docker compose`), else a standalone `docker-compose`.
COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose) \
  $(if $(wildcard .env),--env-file .env) -f deploy/docker-compose.yml $(COMPOSE_S3)
# STORAGE=s3: media in a bucket (deploy/docker-compose.s3.yml), on the bundled SeaweedFS (profile s3)
# unless .env names an S3_ENDPOINT_URL of its own. docs/storage.md.
COMPOSE_S3 = $(if $(filter s3,$(STORAGE)),-f deploy/docker-compose.s3.yml \
  $(shell grep -qs '^S3_ENDPOINT_URL=.' .env || echo --profile s3))

.PHONY: help install keys up down status logs test test-unit test-e2e test-faults bench admin clean top test-fresh \
  compose-up compose-down compose-logs test-compose

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: ## install missing Debian packages and the .venv (idempotent)
	@scripts/install.sh

keys: install ## generate the RSA key pair and service token into var/keys (if absent)
	@$(PY) -m videoflix_shared.keys var/keys

up: install ## start the whole stack on http://127.0.0.1:8000 (admin site /admin/, mail inbox :8025; WORKERS=n transcoders; STORAGE=s3 media in a local SeaweedFS; any VAR=value beats .env)
	@$(if $(WORKERS),TRANSCODER_WORKERS=$(WORKERS)) $(if $(STORAGE),MEDIA_STORAGE=$(STORAGE)) $(STACK) --profile dev up

down: ## stop everything `make up` started
	@$(STACK) --profile dev down

status: ## every process of the local stack with its state, pid and uptime (supervisord)
	@$(STACK) --profile dev status

top: ## one screen of live figures from the metrics: queue, encodings, failures, segments/s, error rate
	@$(PY) scripts/top.py

logs: ## follow the local stack's logs (rotated by supervisord)
	@tail -n 20 -F var/log/*.log

test: install ## unit tests of every service, then the e2e suite against a fresh test stack
	@scripts/test.sh

test-unit: install ## unit tests only (no stack needed)
	@PYTHONPATH=. $(VENV)/bin/pytest services shared gateway deploy

test-e2e: install ## e2e suite only, against a fresh test stack
	@scripts/test.sh tests-e2e

test-faults: install ## fault tests (kill -9, Redis/PostgreSQL/SMTP outages, soak), each on its own stack
	@PYTHONPATH=. $(VENV)/bin/pytest tests-faults

bench: install ## benchmarks with ratios into bench/results/ (one: make bench BENCH=segments)
	@PYTHONPATH=. $(PY) -m bench.run $(BENCH)

test-compose: ## build every image offline, run the compose stack with the e2e flows, restarts, 3 transcoders
	@scripts/test-compose.sh

compose-up: ## production: build and start the Docker Compose stack on :8000 (TRANSCODERS=n, STORAGE=s3)
	@$(COMPOSE) up -d --build --wait $(if $(TRANSCODERS),--scale transcoder=$(TRANSCODERS))

compose-down: ## stop the Docker Compose stack (its volumes, with database, media and keys, are kept)
	@$(COMPOSE) down

compose-logs: ## follow the Docker Compose stack's logs
	@$(COMPOSE) logs -f --tail=50

admin: install ## create an active admin: make admin EMAIL=a@b.c PASSWORD=...
	@test -n "$(EMAIL)" -a -n "$(PASSWORD)" || { echo "usage: make admin EMAIL=... PASSWORD=..."; exit 2; }
	@set -a && eval "$$($(STACK) --profile dev env)" && set +a && $(STACK) --profile dev prepare >/dev/null && \
	  $(VENV)/bin/flask --app services.auth.app create-admin "$(EMAIL)" --password "$(PASSWORD)"

clean: down ## stop the stack and delete var/ (keys, media, mail, logs)
	rm -rf var

test-fresh: ## the README's steps on a brand-new Debian 12 root (debootstrap, namespaces; needs root), timed
	@scripts/test-fresh.sh
