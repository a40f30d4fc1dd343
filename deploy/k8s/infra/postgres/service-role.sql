-- One login role for one service, owning the schema of the same name and nothing else:
-- the database enforces that a service touches only its own tables (DESIGN §1).
-- Run once per service by a superuser (or the database owner), in the application database:
--   psql "$ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 -v service=auth -v password="$AUTH_DB_PASSWORD" \
--        -f service-role.sql
-- The development Postgres (postgres.yaml) runs it for auth, chat and billing on first start.

-- Nothing by default: no connecting, no objects in `public`. Repeating these is harmless.
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

CREATE ROLE :"service" LOGIN PASSWORD :'password';
-- CREATE on the database because the migration runner begins with CREATE SCHEMA IF NOT
-- EXISTS, which Postgres checks against that privilege even when the schema exists. It
-- lets the role make new schemas; it gives nothing on anyone else's.
GRANT CONNECT, CREATE ON DATABASE :"DBNAME" TO :"service";
CREATE SCHEMA :"service" AUTHORIZATION :"service";
-- The migrations and the service pin search_path to their own schema (shared/db.py).
ALTER ROLE :"service" SET search_path = :"service";
