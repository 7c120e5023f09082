# syntax=docker/dockerfile:1
# The app image: gunicorn (the API), the two invalidation workers and the consistency sampler under supervisord, as a
# non-root user. Postgres, Redis, Kafka and the S3 store are separate services (docker-compose.yml).
# The same image runs the one-shot seed: `python -m ops.seed` (db/, data/images/ and ops/ are in it).

FROM python:3.11-slim-bookworm

# LOG_*: supervisord.conf writes each program's log to LOG_DIR/<program>.log, and gunicorn its access
# log to LOG_DIR/access.log; here those files are links to stdout (as the official nginx image does) and
# never rotated, so `docker logs` gets every line (the access lines through supervisord's web log).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_DIR=/var/log/city-cache \
    LOG_FILE_MAX_BYTES=0 \
    LOG_FILE_BACKUPS=0 \
    INVALIDATION_RULES=/app/invalidation.toml

WORKDIR /app

# Dependencies first, in their own layer: code edits do not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && mkdir -p /app/.run \
    && chown 10001:10001 /app/.run \
    && chmod 0700 /app/.run \
    && mkdir -p /var/log/city-cache \
    && ln -s /dev/stdout /var/log/city-cache/web.log \
    && ln -s /dev/stdout /var/log/city-cache/pg_listener.log \
    && ln -s /dev/stdout /var/log/city-cache/kafka_cleaner.log \
    && ln -s /dev/stdout /var/log/city-cache/consistency_sampler.log \
    && ln -s /dev/stdout /var/log/city-cache/access.log

# Code and data stay root-owned (read-only to the app); only /app/.run (supervisord's socket and
# pid, gunicorn's control socket) is writable.
COPY citycache/ citycache/
COPY web/ web/
COPY workers/ workers/
COPY db/ db/
COPY ops/ ops/
COPY data/ data/
# The rules (which table's changes delete which keys); mount another file over it to cache your own tables.
COPY supervisord.conf invalidation.toml ./

USER 10001:10001

# gunicorn's bind port: HTTP_PORT, 8000 by default (citycache/settings.py).
EXPOSE 8000

# /health answers 200 only when Postgres, Redis, Kafka and S3 are all up (each check <= 5 s).
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HTTP_PORT', '8000'), timeout=8)"]

CMD ["supervisord", "-c", "/app/supervisord.conf"]

