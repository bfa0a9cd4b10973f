#!/usr/bin/env bash
# Installs only what is missing: Debian packages first (python3, venv, npm, nginx, PostgreSQL, ...), then
# .venv with every service's requirements, then starts PostgreSQL and Redis if they are not running.
# Safe to run on every `make up` / `make test`: it takes a second when nothing is missing. The one
# prerequisite is `apt-get install -y make git` (a root shell, or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
DEBIAN_PACKAGES="python3 python3-venv python3-pip nginx libnginx-mod-http-js ffmpeg postgresql redis-server
  openssl gettext-base chromium wrk curl procps ca-certificates ${EXTRA_DEBIAN_PACKAGES:-}"

missing=()
# npm: Debian's, unless one is installed already (Node.js from elsewhere brings its own and conflicts).
command -v npm >/dev/null || missing+=(npm)
for package in $DEBIAN_PACKAGES; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A .venv whose pip does not run (python3-venv was missing when it was made, or it was copied from
# another path) is rebuilt, not patched.
if [ -e .venv ] && ! .venv/bin/pip --version >/dev/null 2>&1; then
  echo "rebuilding the broken .venv"
  rm -rf .venv
fi
requirements=(requirements-dev.txt shared/pyproject.toml services/*/requirements.txt)
stamp=".venv/.requirements-$(cat "${requirements[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  args=(-r requirements-dev.txt -e shared)
  for file in services/*/requirements.txt; do args+=(-r "$file"); done
  .venv/bin/pip install -q "${args[@]}"
  rm -f .venv/.requirements-*
  touch "$stamp"
fi

# The local stack's mail catcher (maildev, npm), only when missing or installed from another lock file;
# a lock serialises installs (several test stacks share this checkout).
maildev_stamp="scripts/maildev/node_modules/.videoflix-lock-$(sha256sum scripts/maildev/package-lock.json | cut -c1-16)"
if [ ! -f "$maildev_stamp" ]; then
  command -v npm >/dev/null || { echo "scripts/install.sh: npm is needed for maildev (Debian: apt-get install npm)" >&2; exit 1; }
  (cd scripts/maildev && flock package.json npm ci --no-audit --no-fund --loglevel=error && touch "../../$maildev_stamp")
fi

scripts/services.sh
