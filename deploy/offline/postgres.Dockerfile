# Stands in for postgres:16-alpine (`make test-compose`): Debian bookworm's PostgreSQL 15 behind an
# entrypoint that does what the official one does for this stack: initdb with POSTGRES_USER and
# POSTGRES_PASSWORD on an empty data volume, then /docker-entrypoint-initdb.d/*.sh, then the server.
ARG BASE_IMAGE=videoflix-offline/debian:bookworm
FROM ${BASE_IMAGE}
# No cluster from the package: the entrypoint creates it in the volume. The user first, with the
# official Debian image's numeric ids (the package takes an existing postgres user as it is).
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres \
    && mkdir -p /etc/postgresql-common \
    && echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
    && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
COPY deploy/offline/postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
USER 999:999
ENTRYPOINT ["sh", "/usr/local/bin/docker-entrypoint.sh"]
STOPSIGNAL SIGINT
CMD ["postgres"]
