#!/bin/sh
# A transcoder as if on another machine (the S3 test stack, TRANSCODER_SEPARATE_HOST=true): run by
# `unshare --mount --propagation private`, it puts an empty tmpfs over $VAR_DIR, so MEDIA_DIR, the keys and
# everything else the stack keeps there are gone. What a transcoder host is given stays: the service token
# (copied in first) and its metrics directory (the stack's exporter reads it; a real host runs its own).
# It reaches Redis, the catalog's internal API and S3 over loopback only. Usage: transcoder-host.sh COMMAND...
set -eu
token=$(cat "$SERVICE_TOKEN_FILE")
held=$(mktemp -d)
mount --bind "$PROMETHEUS_MULTIPROC_DIR" "$held"
mount -t tmpfs -o mode=0700 transcoder-host "$VAR_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR" "$(dirname "$SERVICE_TOKEN_FILE")"
mount --move "$held" "$PROMETHEUS_MULTIPROC_DIR"
rmdir "$held"
(umask 077 && printf '%s\n' "$token" > "$SERVICE_TOKEN_FILE")
unset token held
exec "$@"
