#!/usr/bin/env bash
# Builds the web app into frontend/dist: the HTML pages, and every asset (our ES modules, CSS, hls.js)
# under /assets/<version>/ where <version> is a hash of the sources, so nginx may cache assets for a
# year while HTML stays no-cache. Fast and a no-op when dist is already up to date; safe to run
# concurrently (several test stacks share this checkout): a lock serialises builds.
set -euo pipefail
cd "$(dirname "$0")"

exec 9<build.sh
flock 9

# npm ci only when node_modules is missing or was installed from another lock file.
lock_stamp="node_modules/.videoflix-lock-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$lock_stamp" ]; then
  command -v npm >/dev/null || { echo "frontend/build.sh: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
  npm ci --no-audit --no-fund --loglevel=error
  touch "$lock_stamp"
fi

version=$( (find src -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum package-lock.json build.sh) \
  | sha256sum | cut -c1-12)
if [ "$(cat dist/.version 2>/dev/null)" = "$version" ]; then
  exit 0
fi

staging=$(mktemp -d dist.tmp.XXXXXX)
trap 'rm -rf "$staging"' EXIT
assets="$staging/assets/$version"
mkdir -p "$assets/js/vendor"
cp -r src/assets/. "$assets/"
# .js, not .mjs: nginx's mime.types maps only .js to JavaScript, and modules need that type.
cp node_modules/hls.js/dist/hls.min.mjs "$assets/js/vendor/hls.js"
cp node_modules/hls.js/LICENSE "$assets/js/vendor/hls.LICENSE.txt"
# tus-js-client's browser bundle (UMD, a classic script defining window.tus) for resumable uploads.
cp node_modules/tus-js-client/dist/tus.min.js "$assets/js/vendor/tus.js"
cp node_modules/tus-js-client/LICENSE "$assets/js/vendor/tus.LICENSE.txt"
# HTML pages name their assets as __ASSETS__/...; give them the versioned path.
(cd src && find . -name '*.html' -print0) | while IFS= read -r -d '' page; do
  mkdir -p "$staging/$(dirname "$page")"
  sed "s#__ASSETS__#/assets/$version#g" "src/$page" >"$staging/$page"
done
echo "$version" >"$staging/.version"
chmod -R a+rX "$staging"

# Swap in the new build; the old one is removed only after the new one is in place.
if [ -d dist ]; then mv dist "$staging.old"; fi
mv "$staging" dist
rm -rf "$staging.old"
echo "frontend built: dist/ (assets/$version)"
