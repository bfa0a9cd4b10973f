#!/bin/sh
# Creates one database per service. The postgres image runs this from /docker-entrypoint-initdb.d on
# its first start only, when the data volume is empty (POSTGRES_DATABASES: space separated names).
set -eu

for database in ${POSTGRES_DATABASES:?}; do
    echo "creating database $database"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -c "CREATE DATABASE \"$database\" OWNER \"$POSTGRES_USER\""
done
