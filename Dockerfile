FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ceylon_redis ./ceylon_redis
COPY examples ./examples
RUN pip install --no-cache-dir '.[dashboard]'
STOPSIGNAL SIGTERM
CMD ["ceylon-redis", "--help"]
