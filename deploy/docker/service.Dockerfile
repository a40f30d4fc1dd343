# syntax=docker/dockerfile:1
# The image of every service (the simulators have theirs: simulators.Dockerfile). Built from
# the repository root, which holds shared/ and constraints.txt, naming the service's
# directory under services/ and its port (PACKAGE only where the Python package's name
# differs from the directory's: the ai-worker's is ai_worker):
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=chat \
#       --build-arg PORT=8002 -t gemini/chat .
# The README's "Run on Kubernetes" lists each service's arguments; Tilt passes the same.

ARG PYTHON_VERSION=3.11

# --- build: a virtualenv with shared and the service, at the pinned versions ----------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG SERVICE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY constraints.txt ./
COPY shared/ shared/
COPY services/${SERVICE}/ services/${SERVICE}/
# Not editable: the packages (with shared's SQL and event samples) land in site-packages.
RUN pip install -c constraints.txt ./shared ./services/${SERVICE}
# The service's SQL migrations, if it has a database (an empty directory if not).
RUN mkdir -p /app/migrations \
    && if [ -d services/${SERVICE}/migrations ]; then cp services/${SERVICE}/migrations/*.sql /app/migrations/; fi

# --- runtime: the virtualenv and nothing that built it -----------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG PYTHON_VERSION
ARG SERVICE
ARG PACKAGE=${SERVICE}
ARG PORT
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=${PORT} \
    MIGRATIONS_DIR=/app/migrations \
    SERVICE_PACKAGE=${PACKAGE}
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app \
       --shell /usr/sbin/nologin app \
    && install -d -o app -g app /app
COPY --from=build /opt/venv /opt/venv
# The service's code and shared's belong to the app user so that Tilt's live update can sync
# into them in a development cluster; in production the root filesystem is read-only.
COPY --from=build --chown=app:app /opt/venv/lib/python${PYTHON_VERSION}/site-packages/${PACKAGE} /opt/venv/lib/python${PYTHON_VERSION}/site-packages/${PACKAGE}
COPY --from=build --chown=app:app /opt/venv/lib/python${PYTHON_VERSION}/site-packages/shared /opt/venv/lib/python${PYTHON_VERSION}/site-packages/shared
# `python -m <package> migrate` (the init container) reads its SQL files here.
COPY --from=build /app/migrations/ /app/migrations/
WORKDIR /app
USER 10001:10001
EXPOSE ${PORT}
# `python -m <package>`, with the arguments (CMD, or the Deployment's args) after it.
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"$SERVICE_PACKAGE\" \"$@\"", "service"]
CMD ["serve"]
