#!/usr/bin/env bash
# `make test`: unit tests, then a fresh test stack (own ports, databases, var/test) and the e2e suite.
# Usage: scripts/test.sh [pytest paths...]   (default: everything)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
STACK=".venv/bin/python scripts/stack.py --profile test"

# A fresh state every run: test databases, Redis db 1 and var/test are the test stack's alone.
$STACK reset >/dev/null || exit 1
eval "$($STACK env)"

$STACK up || { tail -n 40 "$VAR_DIR"/log/*.log; $STACK down; exit 1; }
trap '$STACK down >/dev/null' EXIT
paths=("$@")
if [ ${#paths[@]} -eq 0 ]; then
  for path in shared services gateway deploy tests-e2e frontend; do [ -d "$path" ] && paths+=("$path"); done
fi
.venv/bin/pytest "${paths[@]}"
