# api, worker and beat: the service packages only (no torch).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY workers workers
COPY api api
COPY kernels kernels
COPY inference inference
RUN pip install --no-cache-dir '.[service]'
ENV PYTHONUNBUFFERED=1
