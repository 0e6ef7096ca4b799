#!/usr/bin/env bash
# Idempotent setup: .venv (engine + service + dev + reference; torch pinned to the CPU wheel) and
# .venv-service (service + dev, no torch: proves api/workers/pipeline run without it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
quiet() { grep -v -e "is ignored: it is neither a file nor a directory" -e "^$" || true; }

# System packages: redis-server (tests start private instances), Tesseract's English data (OCR of scanned
# pages through MuPDF's built-in Tesseract).
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata >/dev/null 2>&1 || need+=(tesseract-ocr-eng)
# Debian's chromium and npm: the web page's browser tests (tests/web) drive chromium through Playwright and inject
# axe-core from npm (never `playwright install`: no browser downloads)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

say() { echo "setup: $*" >&2; }
if [ ! -x .venv/bin/python ]; then
  say "first run: making .venv (torch 2.13 CPU, triton, transformers, the service and test packages; about 2.5 GB,"
  say "2-4 minutes) and .venv-service (the service packages without torch; about 0.9 GB, 1 minute)"
  "$PY" -m venv .venv
fi
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/pip install -q torch==2.13.0 2>&1 | quiet
.venv/bin/pip install -q -e '.[engine,service,dev,reference,bench]' 2>&1 | quiet
if [ ! -f .venv/npm/node_modules/axe-core/axe.min.js ]; then  # outside the package, pinned (tests/web)
  npm install --prefix .venv/npm --no-audit --no-fund --silent axe-core@4.14.1 >/dev/null
fi

if [ ! -x .venv-service/bin/python ]; then
  say ".venv is ready; making .venv-service"
  "$PY" -m venv .venv-service
fi
.venv-service/bin/pip install -q -e '.[service,dev]' 2>&1 | quiet
if .venv-service/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: torch leaked into the service environment" >&2; exit 1
fi
