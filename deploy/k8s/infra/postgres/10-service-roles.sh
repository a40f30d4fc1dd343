#!/bin/sh
# Run by the postgres image once, when it initialises an empty data directory
# (/docker-entrypoint-initdb.d): a role and a schema per service, see service-role.sql.
set -eu
for service in auth chat billing; do
    # AUTH_DB_PASSWORD, CHAT_DB_PASSWORD, BILLING_DB_PASSWORD
    var="$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
    password="$(printenv "$var")" || { echo "$var is not set" >&2; exit 1; }
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -v service="$service" -v password="$password" \
        -f /etc/postgres-init/service-role.sql
done
