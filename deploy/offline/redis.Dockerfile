# Stands in for redis:7.4-alpine (`make test-compose`): Debian bookworm's Redis 7.0, run by its own
# unprivileged user with /data as the working directory (where the append-only file goes).
ARG BASE_IMAGE=videoflix-offline/debian:bookworm
FROM ${BASE_IMAGE}
# The user first, with the official image's numeric ids (the package takes an existing redis user as it is).
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 redis \
    && useradd --system --uid 999 --gid redis --home-dir /var/lib/redis --no-create-home redis \
    && apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER 999:999
CMD ["redis-server"]
