"""Shared test helpers: free ports, and the CI rule that a missing service is a failure, not a skip."""

import os
import socket

import pytest

IN_CI = os.environ.get("CI") == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_service(name: str, why: str) -> None:
    """Skip locally when a service is missing; in CI (CI=true) fail instead."""
    if IN_CI:
        pytest.fail(f"{name} is required in CI: {why}")
    pytest.skip(f"{name} unavailable: {why}")
