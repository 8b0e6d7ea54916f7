# Multi-stage image: dependencies are resolved from uv.lock in a build stage; the runtime
# stage holds the virtualenv and the code, and runs as a non-root user.
#   docker build -t rapport .
#   docker run -e RAPPORT_DATABASE_URL=… -e RAPPORT_REDIS_URL=… -e RAPPORT_SECRET_KEY=… -p 8000:8000 rapport
#   docker run -e … rapport rapport worker        # the background worker
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 rapport
WORKDIR /app
COPY --from=build --chown=rapport:rapport /app /app
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    RAPPORT_ENVIRONMENT=production \
    RAPPORT_API_HOST=0.0.0.0 \
    RAPPORT_LOG_JSON=true
USER rapport
EXPOSE 8000
# Migrations first (concurrent starts take turns on an advisory lock), then the API.
CMD ["sh", "-c", "rapport migrate && exec rapport api"]
