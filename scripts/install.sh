#!/usr/bin/env bash
# Installs only what is missing: Debian packages, then .venv with every service's requirements.
# Safe to run on every `make up` / `make test`: it takes a second when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
DEBIAN_PACKAGES="nginx libnginx-mod-http-js ffmpeg postgresql redis-server openssl gettext-base chromium wrk curl ${EXTRA_DEBIAN_PACKAGES:-}"

missing=()
for package in $DEBIAN_PACKAGES; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The packaged nginx may start itself on port 80; the stack runs its own nginx, so that one is not needed.
requirements=(requirements-dev.txt shared/pyproject.toml services/*/requirements.txt)
stamp=".venv/.requirements-$(cat "${requirements[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
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
