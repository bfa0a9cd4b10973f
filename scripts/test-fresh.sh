#!/usr/bin/env bash
# `make test-fresh`: the README's first steps on a brand-new Debian 12, as a newcomer runs them.
#
# A `debootstrap --variant=minbase bookworm` root (cached under var/fresh/ after the first run), a
# policy-rc.d so installed packages do not start their services, private pid/mount/net/uts/ipc
# namespaces, and slirp4netns for outbound access (to the package registries) through the host's
# network stack, with the host's loopback unreachable (--disable-host-loopback): the root cannot touch
# the host's PostgreSQL, Redis or test stacks. Inside, as root: the prerequisite line
# (`apt-get install -y make git`), a clone of this checkout's HEAD under /root, `make up`, the smoke test
# (web app, register, the mailed link, login, the library, all through the gateway), `git status` clean,
# `make down`. Needs root on the host. FRESH_KEEP=1 keeps the root in var/fresh/root afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
work=$checkout/var/fresh
rootfs=$work/root
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}

if [ "${1:-}" = --inside ]; then
  # In the new namespaces (pid 1 here): loopback up, wait for slirp4netns's tap0, mount, chroot.
  ip link set lo up
  for _ in $(seq 100); do [ -e /sys/class/net/tap0 ] && ip -4 addr show tap0 | grep -q inet && break; sleep 0.1; done
  ip -4 addr show tap0 | grep -q inet || { echo "test-fresh: no network (slirp4netns)" >&2; exit 1; }
  mount -t proc proc "$rootfs/proc"
  mount -t sysfs -o ro sysfs "$rootfs/sys"
  mount --rbind /dev "$rootfs/dev"
  mount -t tmpfs -o mode=1777 tmpfs "$rootfs/dev/shm"
  mount -t tmpfs tmpfs "$rootfs/run"
  # Only the variables a login shell has, plus this machine's TLS trust settings (an egress proxy's CA).
  exec chroot "$rootfs" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ${SSL_CERT_FILE:+SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt} \
    ${REQUESTS_CA_BUNDLE:+REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt} \
    ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt} \
    /bin/bash /root/fresh-steps.sh
fi

[ "$(id -u)" = 0 ] || { echo "make test-fresh needs root (debootstrap, namespaces, chroot)" >&2; exit 1; }
[ -z "$(git status --porcelain)" ] || echo "note: uncommitted changes are not part of the test (it clones HEAD)"
started=$(date +%s)
missing=()
for package in debootstrap slirp4netns iproute2 util-linux; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

mkdir -p "$work"
cache=$work/bookworm-minbase.tar
if [ ! -f "$cache" ]; then
  echo "=== debootstrap --variant=minbase bookworm (cached in $cache for the next run)"
  rm -rf "$work/bootstrap"
  debootstrap --variant=minbase bookworm "$work/bootstrap" "$mirror"
  tar -C "$work/bootstrap" -cf "$cache.part" . && mv "$cache.part" "$cache"
  rm -rf "$work/bootstrap"
fi
rm -rf "$rootfs"
mkdir -p "$rootfs"
tar -C "$rootfs" -xf "$cache"
cleanup() {
  [ -z "${slirp:-}" ] || kill "$slirp" 2>/dev/null || true
  if [ "${FRESH_KEEP:-0}" != 1 ]; then rm -rf "$rootfs"; fi
}
trap cleanup EXIT

printf '#!/bin/sh\n# test-fresh: installed packages do not start their services\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod +x "$rootfs/usr/sbin/policy-rc.d"
echo "nameserver 10.0.2.3" >"$rootfs/etc/resolv.conf"  # slirp4netns's DNS forwarder
echo "deb $mirror bookworm main" >"$rootfs/etc/apt/sources.list"
# This machine reaches the registries through an egress proxy whose CA it trusts: the new root trusts it too.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
fi
git clone -q "$checkout" "$rootfs/root/videoflix"
# What the newcomer types, in a file: its command line is then not mistaken for a leftover process.
cat >"$rootfs/root/fresh-steps.sh" <<'STEPS'
set -euo pipefail
phase() { echo; echo "=== $(date -u +%T) $*"; }
phase "the prerequisite line: apt-get install -y make git"
apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q make git
cd /root/videoflix
phase "make up"
make up
phase "the smoke test through the gateway"
.venv/bin/python scripts/smoke.py --gateway http://127.0.0.1:8000 --mail-dir var/mail
phase "make status"
make status
phase "git status after make up"
git status --porcelain | tee /tmp/dirty
[ ! -s /tmp/dirty ] || { echo "make up left the checkout dirty" >&2; exit 1; }
phase "make down"
make down
if pgrep -a -f "gunicorn|services.transcoder|nginx: master|supervisord"; then
  echo "make down left processes" >&2; exit 1
fi
phase "done"
STEPS
echo "=== clone of $(git rev-parse --short HEAD) in /root/videoflix; entering the namespaces"

# unshare itself joins the new network namespace (its child is pid 1 of the new pid namespace).
unshare --pid --fork --mount --net --uts --ipc "$0" --inside &
inside=$!
for _ in $(seq 50); do [ "$(readlink /proc/$inside/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.1; done
slirp4netns --configure --mtu=65520 --disable-host-loopback "$inside" tap0 >"$work/slirp4netns.log" 2>&1 &
slirp=$!
status=0
wait "$inside" || status=$?
seconds=$(( $(date +%s) - started ))
echo "=== make test-fresh: $([ $status = 0 ] && echo passed || echo "FAILED ($status)") in $((seconds / 60)) min $((seconds % 60)) s"
echo "$(date -u +%FT%TZ) status=$status seconds=$seconds commit=$(git rev-parse --short HEAD)" >>"$work/runs.log"
exit $status
