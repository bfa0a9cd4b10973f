#!/usr/bin/env bash
# `make test-compose`: builds every image of deploy/docker-compose.yml with no container registry, runs
# the stack with deploy/offline/docker-compose.test.yml on the host network (127.0.0.1:30000-30999),
# checks the one-shot jobs, non-root users, the e2e account and video flows through the compose gateway,
# `restart` of each service and three scaled transcoders; then the S3 mode (deploy/docker-compose.s3.yml,
# profile s3: SeaweedFS, no media volume) with the e2e video flow; then tears everything down, its own
# dockerd included. State: var/docker (the engine: data root, socket, images, kept for faster reruns),
# var/compose (keys, media, mail of the test stack, emptied on each run), var/compose-cache (the
# debootstrap tarball of the base image).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
started=$(date +%s)

DOCKER_DIR=$ROOT/var/docker
STATE=$ROOT/var/compose
CACHE=$ROOT/var/compose-cache
BASE_IMAGE=videoflix-offline/debian:bookworm
PYTHON_IMAGE=videoflix-offline/python:3.11-slim
export DOCKER_HOST=unix://$DOCKER_DIR/docker.sock
# The classic builder: Debian's docker.io has no buildx, and `--network host` needs no entitlement there.
export DOCKER_BUILDKIT=0
# The admin job creates this account (its password is new on every run and never printed).
export ADMIN_EMAIL=admin@videoflix.test
ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
export ADMIN_PASSWORD
# Plain HTTP on 127.0.0.1: cookies without the Secure flag (production's default is true, behind TLS).
export DEPLOY_COOKIE_SECURE=false

step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }
fail() { echo "test-compose: FAILED: $*" >&2; exit 1; }
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

step "Debian packages"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
[ -x .venv/bin/pytest ] || scripts/install.sh
# Compose v2: the docker CLI plugin when there is one, else the binary requirements-dev.txt installs.
if docker compose version >/dev/null 2>&1; then COMPOSE_BIN=(docker compose); else COMPOSE_BIN=("$ROOT/.venv/bin/docker-compose"); fi
COMPOSE=("${COMPOSE_BIN[@]}" --progress quiet -f deploy/docker-compose.yml -f deploy/offline/docker-compose.test.yml)
# The S3 mode: the same stack with deploy/docker-compose.s3.yml and the bundled SeaweedFS (profile s3),
# its S3 API on 127.0.0.1:30333 (deploy/offline/docker-compose.s3.test.yml), two new key pairs per run.
COMPOSE_S3=("${COMPOSE_BIN[@]}" --progress quiet -f deploy/docker-compose.yml -f deploy/docker-compose.s3.yml
  -f deploy/offline/docker-compose.test.yml -f deploy/offline/docker-compose.s3.test.yml --profile s3)
export S3_ENDPOINT_URL=http://127.0.0.1:30333
new_secret() { head -c 24 /dev/urandom | base64 | tr '+/' '-_'; }
S3_ACCESS_KEY_ID=VFSER$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
GATEWAY_S3_ACCESS_KEY_ID=VFGAT$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
S3_SECRET_ACCESS_KEY=$(new_secret)
GATEWAY_S3_SECRET_ACCESS_KEY=$(new_secret)
export S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY GATEWAY_S3_ACCESS_KEY_ID GATEWAY_S3_SECRET_ACCESS_KEY
compose() { "${COMPOSE[@]}" "$@"; }

step "the compose checks: config, compose-spec schema, hadolint (deploy/tests, no engine needed)"
PYTHONPATH=. .venv/bin/pytest -q -p no:cacheprovider deploy/tests/test_compose.py deploy/tests/test_compose_s3.py \
  deploy/tests/test_dockerfiles.py

step "dockerd (var/docker)"
mkdir -p "$DOCKER_DIR"
dockerd_pid=
stop_dockerd() {  # and what it leaves mounted (its network namespace), so var/ can be deleted
  kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null
  dockerd_pid=
  awk -v dir="$DOCKER_DIR/" 'index($2, dir) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 $SUDO umount -l
}
cleanup() {
  status=$?
  set +e
  if [ -n "$dockerd_pid" ]; then
    if [ $status != 0 ]; then mkdir -p "$STATE"; { compose ps -a; compose logs --tail=40; } >"$STATE/failure.log" 2>&1; fi
    compose down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1
    stop_dockerd
  fi
  [ $status = 0 ] || echo "test-compose: failed after $(($(date +%s) - started))s; logs: var/compose/failure.log, var/docker/dockerd.log" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A run killed with SIGKILL leaves its dockerd (this checkout's, by its pid file): stop it first.
if [ -s "$DOCKER_DIR/dockerd.pid" ] && tr '\0' ' ' <"/proc/$(cat "$DOCKER_DIR/dockerd.pid")/cmdline" 2>/dev/null \
    | grep -qF -- "--data-root $DOCKER_DIR/data "; then
  echo "stopping the dockerd a killed run left (pid $(cat "$DOCKER_DIR/dockerd.pid"))"
  dockerd_pid=$(cat "$DOCKER_DIR/dockerd.pid")
  $SUDO kill "$dockerd_pid"
  for _ in $(seq 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
  dockerd_pid=
fi
# The stack's loopback ports (deploy/offline/docker-compose.test.yml): another checkout's run holds them.
.venv/bin/python - <<'PY' || fail "a port of the test stack is taken (another make test-compose running?)"
import socket, sys
taken = []
for port in (30001, 30002, 30003, 30004, 30025, 30080, 30091, 30379, 30432, *range(30333, 30341)):
    with socket.socket() as probe:
        # As the servers do: a port with only TIME_WAIT connections left (a run just ended) is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            taken.append(port)
sys.exit(f"127.0.0.1 ports in use: {taken}" if taken else 0)
PY
$SUDO dockerd --data-root "$DOCKER_DIR/data" --exec-root "$DOCKER_DIR/run" --pidfile "$DOCKER_DIR/dockerd.pid" \
  --host "$DOCKER_HOST" --bridge=none --iptables=false --ip-masq=false >"$DOCKER_DIR/dockerd.log" 2>&1 &
dockerd_pid=$!
dockerd_failed() {
  tail -15 "$DOCKER_DIR/dockerd.log" >&2
  fail "dockerd $1 (log above, whole in var/docker/dockerd.log): it needs root, cgroups, overlayfs or vfs, and no other dockerd on $DOCKER_DIR"
}
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && break
  kill -0 "$dockerd_pid" 2>/dev/null || { dockerd_pid=; dockerd_failed "exited at start"; }
  sleep 1
done
docker info >/dev/null 2>&1 || dockerd_failed "did not answer on var/docker/docker.sock within 60 s"
docker info --format 'engine {{.ServerVersion}}, storage {{.Driver}}'
# What a killed run left, S3 mode's SeaweedFS and its volumes included.
"${COMPOSE_S3[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true

step "base image $BASE_IMAGE"
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if [ ! -s "$CACHE/bookworm-minbase.tar" ]; then
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    $SUDO debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$CACHE/debootstrap.log" \
      || { tail -20 "$CACHE/debootstrap.log"; fail "debootstrap"; }
    # This machine's own certificate authorities (a TLS-inspecting proxy's, say): pip and npm in the
    # builds then reach PyPI and npm as the host does. Images that install ca-certificates take them in.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      mkdir -p "$rootfs/usr/local/share/ca-certificates"
      cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    fi
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
    # As Debian's official images: security updates, no documentation, no daemons started by packages.
    printf '%s\n' "deb http://deb.debian.org/debian bookworm main" \
      "deb http://deb.debian.org/debian bookworm-updates main" \
      "deb http://deb.debian.org/debian-security bookworm-security main" >"$rootfs/etc/apt/sources.list"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
      >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim"
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d" && chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    $SUDO tar -C "$rootfs" --numeric-owner -cf "$CACHE/bookworm-minbase.tar.partial" .
    mv "$CACHE/bookworm-minbase.tar.partial" "$CACHE/bookworm-minbase.tar"
    $SUDO rm -rf "$rootfs"
  fi
  docker import --change 'CMD ["bash"]' "$CACHE/bookworm-minbase.tar" "$BASE_IMAGE" >/dev/null
fi

build() {  # build TAG DOCKERFILE [build args...]: the repository root is the context, as in compose.
  local tag=$1 dockerfile=$2
  shift 2
  local begin=$SECONDS
  docker build --network host --quiet -t "$tag" -f "$dockerfile" "$@" . >/dev/null 2>&1 \
    || { docker build --network host -t "$tag" -f "$dockerfile" "$@" . | tail -40; fail "building $tag"; }
  echo "$tag: $((SECONDS - begin))s"
}

step "stand-ins for the public images"
build "$PYTHON_IMAGE" deploy/offline/python.Dockerfile
build videoflix-offline/node:bookworm deploy/offline/node.Dockerfile
build videoflix-offline/nginx:bookworm deploy/offline/nginx.Dockerfile
build videoflix-offline/postgres deploy/offline/postgres.Dockerfile
build videoflix-offline/redis deploy/offline/redis.Dockerfile
build videoflix-offline/mailpit deploy/offline/mailpit.Dockerfile
build videoflix-offline/seaweedfs deploy/offline/seaweedfs.Dockerfile

step "the five images, from the project's Dockerfiles"
for service in auth catalog streamer transcoder; do
  build "videoflix/$service" "services/$service/Dockerfile" --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE"
done
build videoflix/gateway gateway/Dockerfile \
  --build-arg NODE_IMAGE=videoflix-offline/node:bookworm --build-arg NGINX_IMAGE=videoflix-offline/nginx:bookworm

step "every image runs as a non-root user"
images=$("${COMPOSE_S3[@]}" config --images | sort -u)
for image in $images; do
  user=$(docker image inspect -f '{{.Config.User}}' "$image")
  uid=$(docker run --rm --network none --entrypoint id "$image" -u)
  printf '%-36s USER %-12s uid %s  %s\n' "$image" "${user:-none}" "$uid" \
    "$(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
  [ "$uid" != 0 ] || fail "$image runs as root"
done

step "docker compose up --wait"
$SUDO rm -rf "$STATE"
mkdir -p "$STATE/keys" "$STATE/media" "$STATE/mail"
# The bind-mounted directories belong to the images' user (uid 10001), as a fresh named volume would.
$SUDO chown -R 10001:10001 "$STATE/keys" "$STATE/media" "$STATE/mail"
compose up --detach --wait --no-build

JOBS=(keys migrate-auth migrate-catalog admin)
check_jobs() {  # each one-shot job: one container, exited 0; prints when each one started
  for job in "${JOBS[@]}"; do
    local ids
    ids=$(compose ps --all --quiet "$job")
    [ "$(wc -w <<<"$ids")" = 1 ] || fail "$job: expected one container, got: $ids"
    [ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$ids")" = "exited 0" ] \
      || { compose logs "$job" >&2; fail "$job did not succeed"; }
    echo "$job $(docker inspect -f '{{.State.StartedAt}}' "$ids")"
  done
}
database() { docker exec "$(compose ps --quiet postgres)" psql -p 30432 -U videoflix -Atq -d "$1" -c "$2"; }
stack_state() {  # what a second run of the jobs must leave as it is
  sha256sum "$STATE"/keys/* | sed "s#$STATE/##"
  database videoflix_auth "select version_num from alembic_version"
  database videoflix_catalog "select version_num from alembic_version"
  database videoflix_auth "select id, email, is_active, is_admin from users where email = '$ADMIN_EMAIL'"
}
first_jobs=$(check_jobs)
first=$(stack_state)
echo "$first"
grep -q "$ADMIN_EMAIL" <<<"$first" || fail "the admin job created no admin"

step "a second up: the jobs run again and change nothing"
compose up --detach --wait --no-build
second_jobs=$(check_jobs)
for job in "${JOBS[@]}"; do
  [ "$(grep "^$job " <<<"$first_jobs")" != "$(grep "^$job " <<<"$second_jobs")" ] || fail "$job did not run again"
done
echo "the jobs ran again: $(tr '\n' ' ' <<<"$second_jobs")"
[ "$(stack_state)" = "$first" ] || { stack_state; fail "a second up changed keys, migrations or the admin"; }

step "every running container's processes are non-root"
non_root() {
  for container in $(compose ps --quiet); do
    name=$(docker inspect -f '{{.Name}}' "$container")
    uids=$(docker top "$container" -eo pid,uid | awk 'NR > 1 {print $2}' | sort -u | tr '\n' ' ')
    echo "$name: uid $uids"
    if grep -qw 0 <<<"$uids"; then fail "$name runs a process as root"; fi
  done
}
non_root

step "e2e account and video flows through the compose gateway (127.0.0.1:30080)"
cat >"$STATE/e2e.env" <<ENV
VAR_DIR=$STATE
GATEWAY_PORT=30080
AUTH_PORT=30001
CATALOG_PORT=30002
STREAMER_PORT=30003
CATALOG_INTERNAL_PORT=30004
GATEWAY_TOKEN_RECHECK_SECONDS=3
TRUSTED_PROXIES=127.0.0.252
AUTH_DATABASE_URL=postgresql://videoflix:videoflix@127.0.0.1:30432/videoflix_auth
CATALOG_DATABASE_URL=postgresql://videoflix:videoflix@127.0.0.1:30432/videoflix_catalog
REDIS_URL=redis://127.0.0.1:30379/0
KEYS_DIR=$STATE/keys
MEDIA_DIR=$STATE/media
MAIL_DIR=$STATE/mail
PUBLIC_BASE_URL=http://127.0.0.1:30080
FRONTEND_BASE_URL=http://127.0.0.1:30080
MAX_UPLOAD_BYTES=67108864
COMPOSE_COMMAND=${COMPOSE[*]}
ENV
export E2E_STACK_ENV=$STATE/e2e.env
e2e() { PYTHONPATH=. .venv/bin/pytest -q -p no:cacheprovider "$@"; }
# Not here: the log test reads the local stack's log files (compose logs go to `docker compose logs`).
e2e tests-e2e/test_accounts.py tests-e2e/test_videos.py \
  --deselect tests-e2e/test_accounts.py::test_link_tokens_never_reach_the_logs

step "docker compose restart of each service loses nothing"
e2e tests-e2e/test_compose.py -k restart

step "docker compose up --scale transcoder=3: three workers share the queue"
compose up --detach --wait --no-build --scale transcoder=3
[ "$(compose ps --quiet transcoder | wc -l)" = 3 ] || fail "not three transcoder containers"
e2e tests-e2e/test_compose.py -k scale

step "the gateway lost no connection to a service over the whole run"
# Every request went out once everything was healthy: a failed upstream connection is a request lost or retried.
upstream_errors=$(compose logs --no-color gateway 2>&1 | grep -E 'upstream|connect\(\) failed' | grep -Ev 'jwt\.sock' || true)
[ -z "$upstream_errors" ] || { echo "$upstream_errors"; fail "the gateway logged failed upstream connections"; }
echo none

step "S3 mode: down, then up with deploy/docker-compose.s3.yml --profile s3 (SeaweedFS, no media volume)"
s3_started=$SECONDS
compose down --volumes --remove-orphans --timeout 20
$SUDO rm -rf "$STATE/keys" "$STATE/media" "$STATE/mail"
mkdir -p "$STATE/keys" "$STATE/media" "$STATE/mail"
$SUDO chown -R 10001:10001 "$STATE/keys" "$STATE/media" "$STATE/mail"
COMPOSE=("${COMPOSE_S3[@]}" )
compose up --detach --wait --no-build
JOBS=(keys migrate-auth migrate-catalog admin seaweedfs-config bucket)
check_jobs
non_root
# No container of the stack mounts the media volume (the catalog's own catalog-uploads holds unfinished
# resumable uploads); the transcoders mount the public keys only.
for container in $(compose ps --all --quiet); do
  service=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$container")
  mounts=$(docker inspect -f '{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}' "$container")
  printf '%-18s %s\n' "$service" "$mounts"
  ! grep -qE '(^|_)media:' <<<"$mounts" || fail "$service mounts the media volume in the S3 mode"
  if [ "$service" = transcoder ]; then
    [ "$(xargs -n1 <<<"$mounts" | sed 's/^.*_//')" = "public-keys:/data/keys" ] \
      || fail "a transcoder mounts more than the public keys: $mounts"
  fi
done

step "S3 mode: e2e video flow through the compose gateway (media in the bucket)"
{ cat "$STATE/e2e.env"; printf '%s\n' MEDIA_STORAGE=s3 "S3_ENDPOINT_URL=$S3_ENDPOINT_URL" \
    "S3_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID" "S3_SECRET_ACCESS_KEY=$S3_SECRET_ACCESS_KEY" \
    "COMPOSE_COMMAND=${COMPOSE[*]}"; } >"$STATE/e2e-s3.env"
chmod 600 "$STATE/e2e-s3.env"
export E2E_STACK_ENV=$STATE/e2e-s3.env
e2e tests-e2e/test_videos.py
# Every medium went to the bucket: originals and complete ladders there, nothing on any disk of the stack.
.venv/bin/python - <<'PY' || fail "the bucket does not hold the videos' media"
import collections, os
from videoflix_shared.config import Settings
from videoflix_shared.storage import storage_from_settings
env = dict(line.split("=", 1) for line in open(os.environ["E2E_STACK_ENV"]).read().splitlines() if "=" in line)
storage = storage_from_settings(Settings.from_env(env))
objects = collections.Counter(item.key.split("/")[0] for item in storage.list(""))
masters = [item.key for item in storage.list("hls/") if item.key.endswith("/master.m3u8")]
print(f"bucket {env.get('S3_BUCKET', 'videoflix')}: {dict(objects)}, {len(masters)} master playlists")
assert objects["originals"] and objects["hls"] and masters, objects
PY
[ -z "$(find "$STATE/media" -mindepth 1 -print -quit)" ] || fail "var/compose/media is not empty in the S3 mode"
echo "S3 pass: $((SECONDS - s3_started))s"

step "image sizes"
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^videoflix' | sort

step "tear down"
compose down --volumes --remove-orphans --timeout 20
stop_dockerd
elapsed=$(($(date +%s) - started))
printf '\nmake test-compose passed in %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
