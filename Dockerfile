# runtimes-mcp: stdio by default; add `--transport http --host 0.0.0.0` to serve Streamable HTTP on 8000.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    RUNTIMES_MCP_DATA_DIR=/data

RUN useradd --create-home --uid 10001 runtimes \
    && mkdir -p /data && chown runtimes:runtimes /data && chmod 700 /data

WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
# Every dependency (and dumb-init, the `docker` extra) at the version and with the hashes of requirements.lock.
RUN pip install --require-hashes -r requirements.lock
COPY server ./server
COPY tools ./tools
COPY docs_topics ./docs_topics
COPY providers ./providers
# dumb-init is PID 1: session supervisors outlive the server by design, and whoever is PID 1 reaps them.
RUN pip install --no-deps . && pip check

USER runtimes
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["dumb-init", "--", "runtimes-mcp"]
