# Stands in for node:22-bookworm-slim (`make test-compose`): Debian bookworm's Node.js and npm, enough for
# frontend/build.sh (npm ci, then copying files).
ARG BASE_IMAGE=videoflix-offline/debian:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# Node's own CA list ignores the system's: add it (with any local CA the base image took in).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
