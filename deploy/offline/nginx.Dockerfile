# Stands in for nginx:1.28-alpine (`make test-compose`): Debian bookworm's nginx with the njs module
# (at the path deploy/nginx.conf loads it from), envsubst for gateway/render.sh, wget for the
# healthcheck, and the official image's unprivileged user 101.
ARG BASE_IMAGE=videoflix-offline/debian:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-http-js gettext-base wget \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 101 --user-group --no-create-home --home-dir /nonexistent nginx
CMD ["nginx", "-g", "daemon off;"]
