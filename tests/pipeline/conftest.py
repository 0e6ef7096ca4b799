"""Shared fixtures for tests/pipeline: a real S3 HTTP server (moto's, as a subprocess) for the blob store tests."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, need_service


@pytest.fixture(scope="session")
def moto_endpoint():
    """`host:port` of a moto S3 server process on loopback, started once per session."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        need_service("moto_server", f"{exe} not found; install the dev extra (moto[server])")
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    need_service("moto_server", f"did not answer on port {port} (exit code {proc.poll()})")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
