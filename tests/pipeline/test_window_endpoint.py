"""The window a job plans for (docs/over-window.md#the-window), against a real loopback server: the endpoint's
max_model_len, asked once per REPORTED_FOR seconds per endpoint; else WHOLEDOC_MAX_MODEL_LEN; else V4's."""

import time
import uuid

from pipeline.client import ClientConfig, InferenceClient
from pipeline.prompts.budget import V4_WINDOW
from pipeline.prompts.window import REPORTED_FOR, endpoint_window, reported_window
from tests.pipeline.faultserver import FaultServer


def _server(wholedoc: bool) -> FaultServer:
    return FaultServer(wholedoc=wholedoc, model=f"m-{uuid.uuid4().hex[:8]}")  # its own cache key, whatever the port


def _client(s: FaultServer) -> InferenceClient:
    return InferenceClient(ClientConfig(s.base_url, s.model, max_retries=0, control_timeout=2.0))


def test_the_endpoint_is_asked_once_per_interval():
    s = _server(wholedoc=True)
    try:
        with _client(s) as c:
            assert endpoint_window(c, 4096) == 1_048_576  # the endpoint's answer beats the configured window
            assert endpoint_window(c, 4096) == 1_048_576
            assert s.paths("GET").count("/v1/models") == 1
            assert reported_window(c, now=time.monotonic() + REPORTED_FOR + 1) == 1_048_576
            assert s.paths("GET").count("/v1/models") == 2
    finally:
        s.close()
    assert s.errors == []


def test_an_endpoint_without_a_window_gets_the_configured_one_else_v4s():
    s = _server(wholedoc=False)
    try:
        with _client(s) as c:
            assert endpoint_window(c, 4096) == 4096
            assert endpoint_window(c, None) == V4_WINDOW
            assert s.paths("GET").count("/v1/models") == 1  # "does not say" is an answer too: kept
    finally:
        s.close()


def test_an_endpoint_that_cannot_be_reached_is_not_an_error():
    s = _server(wholedoc=True)
    s.close()  # nothing listens on its port any more
    with _client(s) as c:
        assert endpoint_window(c, 4096) == 4096
        assert endpoint_window(None, 4096) == 4096  # no endpoint configured: nothing to ask
