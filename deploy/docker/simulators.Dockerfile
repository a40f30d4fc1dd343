# syntax=docker/dockerfile:1
# The Gemini and Stripe simulators (dev/gemini_sim, dev/stripe_sim) for a development cluster:
# one image, the container's args pick the simulator. Built from the repository root:
#   docker build -f deploy/docker/simulators.Dockerfile -t gemini/simulators .
# dev/ is not an installed package: the image copies it and installs only what the
# simulators import, at the pinned versions.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY constraints.txt /src/
RUN pip install -c /src/constraints.txt fastapi uvicorn httpx

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app \
       --shell /usr/sbin/nologin app \
    && install -d -o app -g app /app
COPY --from=build /opt/venv /opt/venv
# Owned by the app user so that Tilt's live update can sync into it.
COPY --chown=app:app dev/ /app/dev/
WORKDIR /app
USER 10001:10001
EXPOSE 8765 12111
ENTRYPOINT ["python", "-m"]
CMD ["dev.gemini_sim", "--host", "0.0.0.0"]
