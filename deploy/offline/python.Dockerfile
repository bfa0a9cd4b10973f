# Stands in for python:3.11-slim when no registry is reachable (`make test-compose`): Debian bookworm's
# python3.11 in a virtualenv that is first on PATH, so `python`, `pip` and the scripts pip installs
# resolve as in the official image (whose /usr/local Python pip may install into as root).
ARG BASE_IMAGE=videoflix-offline/debian:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/python
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]
