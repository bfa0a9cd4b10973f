#!/bin/sh
# Render deploy/nginx.conf into DIR (the nginx prefix): `gateway/render.sh DIR`, then
# `nginx -p DIR -c DIR/nginx.conf`. Used by scripts/stack.py and by the gateway container alike.
set -eu

out=${1:?usage: render.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
template=${NGINX_TEMPLATE:-$here/../deploy/nginx.conf}

: "${GATEWAY_PORT:=8000}"
: "${AUTH_UPSTREAM:=127.0.0.1:5001}"
: "${CATALOG_UPSTREAM:=127.0.0.1:5002}"
: "${STREAMER_UPSTREAM:=127.0.0.1:5003}"
: "${MEDIA_DIR:=var/media}"
: "${KEYS_DIR:=var/keys}"
: "${FRONTEND_DIR:=frontend/dist}"
: "${CORS_ORIGINS:=http://127.0.0.1:5500 http://localhost:5500 http://127.0.0.1:8000 http://localhost:8000}"
: "${MAX_UPLOAD_BYTES:=2147483648}"
: "${GATEWAY_AUTH_RATE:=10r/m}"
: "${GATEWAY_AUTH_BURST:=10}"
: "${GATEWAY_TOKEN_RECHECK_SECONDS:=60}"
: "${TRUSTED_PROXIES:=}"
: "${GATEWAY_STATUS_PORT:=5091}"
# Media on local disk (sendfile) or in an S3 bucket (proxied, signed by s3.js; docs/playback-s3.md).
: "${MEDIA_STORAGE:=local}"
# Empty: the local stack's own SeaweedFS on S3_PORT (as for the services).
: "${S3_ENDPOINT_URL:=http://127.0.0.1:${S3_PORT:-8333}}"
: "${S3_REGION:=us-east-1}"
: "${S3_BUCKET:=videoflix}"
: "${GATEWAY_MEDIA_CACHE_SIZE:=5g}"
# Set by scripts/stack.py when it runs as root: nginx workers run as root (the checkout may be in /root).
: "${GATEWAY_WORKER_USER:=}"
WORKER_USER_DIRECTIVE=${GATEWAY_WORKER_USER:+"user $GATEWAY_WORKER_USER;"}

# nginx needs absolute paths: the prefix is not the directory these are relative to.
absolute() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$(pwd)" "$1" ;; esac; }
MEDIA_DIR=$(absolute "$MEDIA_DIR")
KEYS_DIR=$(absolute "$KEYS_DIR")
FRONTEND_DIR=$(absolute "$FRONTEND_DIR")

# One `map` entry per allowed origin (CORS_ORIGINS is space or comma separated).
CORS_ORIGIN_MAP=$(printf '%s\n' "$CORS_ORIGINS" | tr ', ' '\n\n' \
    | sed -n 's#^\(https\{0,1\}://[]A-Za-z0-9.:[-]\{1,\}\)/*$#        "\1" "\1";#p')
# Each trusted proxy (TRUSTED_PROXIES: addresses or CIDRs, space or comma separated) becomes a
# set_real_ip_from line and an entry of the geo that believes its X-Forwarded-Proto.
proxies=$(printf '%s\n' "$TRUSTED_PROXIES" | tr ', ' '\n\n' | grep -E '^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$' || true)
REAL_IP_FROM=$(printf '%s\n' "$proxies" | sed -n 's#^\(..*\)$#    set_real_ip_from \1;#p')
TRUSTED_PROXY_GEO=$(printf '%s\n' "$proxies" | sed -n 's#^\(..*\)$#        \1 1;#p')
# S3_ENDPOINT_URL (scheme://host[:port], path-style requests) split for nginx: the upstream's address
# and the Host header that is signed; https verifies the endpoint's certificate against the system CAs.
case $MEDIA_STORAGE in
    local) media_kept=local media_dropped=s3 ;;
    s3) media_kept=s3 media_dropped=local ;;
    *) echo "render.sh: MEDIA_STORAGE must be local or s3, not '$MEDIA_STORAGE'" >&2; exit 1 ;;
esac
S3_SCHEME=${S3_ENDPOINT_URL%%://*}
S3_HOST=${S3_ENDPOINT_URL#*://}
S3_HOST=${S3_HOST%%/*}
case $S3_SCHEME in
    http) S3_ADDRESS=$S3_HOST S3_PROXY_TLS= ;;
    https)
        S3_ADDRESS=$S3_HOST
        case $S3_HOST in *:*) ;; *) S3_ADDRESS=$S3_HOST:443 ;; esac
        S3_PROXY_TLS="            proxy_ssl_server_name on;
            proxy_ssl_name ${S3_HOST%:*};
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;" ;;
    *) echo "render.sh: S3_ENDPOINT_URL must be http(s)://host[:port], not '$S3_ENDPOINT_URL'" >&2; exit 1 ;;
esac
printf '%s' "$S3_BUCKET$S3_REGION" | grep -Eq '^[a-z0-9][a-z0-9.-]*[a-z0-9]$' \
    || { echo "render.sh: S3_BUCKET and S3_REGION must be plain names" >&2; exit 1; }
# The upload route accepts the file plus the multipart framing and the other form fields.
UPLOAD_BODY_LIMIT=$((MAX_UPLOAD_BYTES + 1048576))

GATEWAY_DIR=$(mkdir -p "$out" && cd "$out" && pwd)

export GATEWAY_DIR GATEWAY_PORT AUTH_UPSTREAM CATALOG_UPSTREAM STREAMER_UPSTREAM MEDIA_DIR KEYS_DIR FRONTEND_DIR \
    CORS_ORIGIN_MAP UPLOAD_BODY_LIMIT GATEWAY_AUTH_RATE GATEWAY_AUTH_BURST GATEWAY_TOKEN_RECHECK_SECONDS \
    REAL_IP_FROM TRUSTED_PROXY_GEO GATEWAY_STATUS_PORT WORKER_USER_DIRECTIVE \
    S3_SCHEME S3_HOST S3_ADDRESS S3_BUCKET S3_REGION S3_PROXY_TLS GATEWAY_MEDIA_CACHE_SIZE

# Verified tokens are cached per key pair: a new render (new keys, maybe) starts empty.
rm -rf "$out/cache"
mkdir -p "$out/tmp" "$out/cache"
# The other storage's lines go, then the markers.
sed -e "/^#<$media_dropped>\$/,/^#<\/$media_dropped>\$/d" -e "/^#<\/\{0,1\}$media_kept>\$/d" "$template" \
| envsubst '$GATEWAY_DIR $GATEWAY_PORT $AUTH_UPSTREAM $CATALOG_UPSTREAM $STREAMER_UPSTREAM $MEDIA_DIR $KEYS_DIR
    $FRONTEND_DIR $CORS_ORIGIN_MAP $UPLOAD_BODY_LIMIT $GATEWAY_AUTH_RATE $GATEWAY_AUTH_BURST
    $GATEWAY_TOKEN_RECHECK_SECONDS $REAL_IP_FROM $TRUSTED_PROXY_GEO $GATEWAY_STATUS_PORT $WORKER_USER_DIRECTIVE
    $S3_SCHEME $S3_HOST $S3_ADDRESS $S3_BUCKET $S3_REGION $S3_PROXY_TLS $GATEWAY_MEDIA_CACHE_SIZE' \
    >"$out/nginx.conf"
cp "$here"/*.js "$out/"
