"""The client against wholedoc's own inference server (inference/server) over real HTTP on loopback.

The server runs a scripted engine (the engine API the server drives: add_request / step / progress / abort /
probe), so the HTTP layer is the real one and the test is fast. Needs torch (the server imports the engine's
sampling types): it runs in the full environment; the torch-free CI environment has no server to test.
"""

import threading
import time

import pytest

pytest.importorskip("torch", reason="wholedoc's inference server needs the engine environment")
import uvicorn  # noqa: E402

from inference.server import ServerConfig, create_app  # noqa: E402
from pipeline.client import ClientConfig, InferenceClient  # noqa: E402
from pipeline.errors import ContextWindowExceeded, RequestCancelled  # noqa: E402
from tests.helpers.services import free_port  # noqa: E402
from tests.helpers.wait import wait_until  # noqa: E402
from tests.inference.server.scripted_engine import ScriptedEngine  # noqa: E402

MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "word " * 300}]


@pytest.fixture
def serve():
    servers = []

    def start(engine) -> InferenceClient:
        port = free_port()
        app = create_app(engine, ServerConfig(model_name="wholedoc", progress_interval_s=0))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, 10, "the inference server start", 0.02)
        servers.append((server, thread))
        return InferenceClient(ClientConfig(f"http://127.0.0.1:{port}/v1", "wholedoc", backoff_base=0.01))

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("stream", [True, False])
def test_thinking_usage_and_progress(serve, stream):
    engine = ScriptedEngine(["Let me", " think</think>", "The answer", "<｜end▁of▁sentence｜>"], cached=128, chunk=100)
    reports = []
    with serve(engine) as c:
        out = c.chat(MESSAGES, max_tokens=50, thinking=True, stream=stream, request_id="t-1",
                     on_progress=reports.append)
    assert (out.reasoning_content, out.content, out.finish_reason) == ("Let me think", "The answer", "stop")
    assert out.usage.cached_tokens == 128 and out.usage.prompt_tokens > 300
    if stream:
        prefill = [p for p in reports if p.phase == "prefill"]
        assert prefill and prefill[-1].prefill_tokens_total == out.usage.prompt_tokens - 128


def test_extras_probe_tokenize_models_status(serve):
    engine = ScriptedEngine(["ok"], cached=128)
    with serve(engine) as c:
        assert c.max_model_len() == 8192
        n = c.tokenize(MESSAGES)
        probe = c.probe_cache(MESSAGES)
        assert probe.prompt_tokens == n and probe.cached_tokens == 128 and probe.tokens_to_compute == n - 128
        c.chat(MESSAGES, max_tokens=8, request_id="s-1")
        status = c.request_status("s-1")
        assert (status.id, status.state, status.tokens_generated) == ("s-1", "finished", 1)


def test_cancel_in_prefill_aborts_on_the_server(serve):
    engine = ScriptedEngine(["never"], cached=128, chunk=1, step_s=0.1)  # ~300 prefill steps: ~30 s
    cancel = threading.Event()

    def cancel_in_prefill():
        wait_until(lambda: engine.reqs.get("c-1", {}).get("done"), 10, "the prefill of c-1 under way", 0.02)
        cancel.set()

    threading.Thread(target=cancel_in_prefill, daemon=True).start()
    t0 = time.monotonic()
    with serve(engine) as c, pytest.raises(RequestCancelled):
        c.chat(MESSAGES, max_tokens=8, request_id="c-1", cancel=cancel)
    # the bound is the behaviour: the cancel ends the call, not the ~30 s prefill (generous for a loaded machine)
    assert time.monotonic() - t0 < 15
    wait_until(lambda: "c-1" in engine.aborted, 10, "the abort of c-1 on the server", 0.02)
    assert not engine.has_unfinished()


def test_over_the_window_is_a_typed_error_with_both_counts(serve):
    engine = ScriptedEngine(["x"], cached=128, max_model_len=200)
    with serve(engine) as c, pytest.raises(ContextWindowExceeded) as e:
        c.chat(MESSAGES, max_tokens=8)
    assert e.value.window_tokens == 200 and e.value.requested_tokens > 300


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029"], ids=["NEL", "LS", "PS"])
def test_streamed_text_may_hold_characters_that_splitlines_breaks_at(serve, char):
    """Regression: the server writes these raw inside `data:` JSON (ensure_ascii=False); the client split SSE lines
    like str.splitlines (httpx iter_lines), cut the chunk in two and failed with "stream chunk is not JSON"."""
    engine = ScriptedEngine([f"a{char}b", f"{char}", f"c{char}</think>", f"d{char}e", "<｜end▁of▁sentence｜>"])
    with serve(engine) as c:
        out = c.chat(MESSAGES, max_tokens=50, thinking=True, stream=True, request_id="ls-1")
    assert out.reasoning_content == f"a{char}b{char}c{char}"
    assert (out.content, out.finish_reason, out.attempts) == (f"d{char}e", "stop", 1)
