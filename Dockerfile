# Reactor in a container: `reactor serve` as a non-root user, with a health check on /health.
#
#   docker build -t reactor .
#   docker run -p 3210:3210 -p 3211:3211 -v reactor-data:/data -v "$PWD/myapp:/app:ro" reactor
#
# NOT RUN HERE: no Docker engine runs where Reactor is developed. tests/test_packaging.py checks
# this file against docs/operations.md ("Packaging: Docker and MongoDB") and the CLI's flags.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The server runs as this user, never as root.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin reactor \
    && mkdir -p /data /app \
    && chown reactor:reactor /data

WORKDIR /opt/reactor
COPY pyproject.toml README.md ./
COPY schema ./schema
COPY functions ./functions
COPY reactor ./reactor
COPY client_sdk ./client_sdk
RUN pip install ".[mongo]"

# The app to serve: the task board example unless a directory is mounted at /app.
COPY examples/taskboard /app

USER reactor
VOLUME ["/data"]
EXPOSE 3210 3211

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3210/health', timeout=2).status != 200)"]

ENTRYPOINT ["reactor", "serve"]
CMD ["/app", "--host", "0.0.0.0", "--port", "3210", "--data", "/data", "--admin-key-file", "/data/admin_key"]
