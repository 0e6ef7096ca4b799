# The inference server (GPU image). torch is pinned by the [engine] extra.
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04
# Triton compiles its kernels at run time: it needs a C compiler and the Python headers.
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY kernels kernels
COPY inference inference
COPY pipeline pipeline
COPY workers workers
COPY api api
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir '.[engine]'
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1
