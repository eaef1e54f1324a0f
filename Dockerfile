# Convai Admin: one image for every role (web, worker, scheduler, migrate, all), chosen by the
# command: `docker run IMAGE web`. Build: `docker build -t convai-admin .` (docs/production.md).
# The base is pinned to an exact Python release; pin it by digest too in your registry mirror.

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Every dependency is pinned (direct and transitive) in requirements.txt; wheels only.
RUN /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

FROM python:3.11.7-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHON=python \
    CONVAI_ADMIN_VAR_DIR=/var/lib/convai-admin \
    WEB_BIND=0.0.0.0:8000
RUN groupadd --system --gid 10001 convai \
    && useradd --system --uid 10001 --gid convai --home-dir /app --shell /usr/sbin/nologin convai \
    && install -d -o convai -g convai -m 0700 /var/lib/convai-admin
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root . /app
USER 10001:10001
VOLUME ["/var/lib/convai-admin"]
EXPOSE 8000
# A tiny standard-library probe of /healthz (no curl in the image, no Django import).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["all"]
