"""Real `python -m inference.serve` processes (tests/inference/server/helpers.py's Server) on tests/conftest.py's
tiny_checkpoint, one per module, and the official clients on them."""

import anthropic
import openai
import pytest

from tests.inference.server.helpers import ROOMY, Server


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    """ROOMY: 4 running requests, 128-token prefill chunks, a 0.25 GiB cache."""
    s = Server(tiny_checkpoint, *ROOMY, log=tmp_path_factory.mktemp("log") / "server.log")
    yield s
    s.close()


@pytest.fixture(scope="module")
def tight_server(tiny_checkpoint, tmp_path_factory):
    """Tight: one running request, one waiting, 16-token prefill chunks (long prefills), a 4096-token window."""
    s = Server(tiny_checkpoint, "--max-num-seqs", "1", "--max-num-batched-tokens", "16", "--max-waiting", "1",
               "--max-model-len", "4096", "--cache-gib", "0.25", "--progress-interval", "0",
               log=tmp_path_factory.mktemp("log") / "tight.log")
    yield s
    s.close()


@pytest.fixture(scope="module")
def oai(server):
    """The unmodified official OpenAI client on the module's server."""
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def claude(server):
    """The unmodified official Anthropic client on the module's server."""
    return anthropic.Anthropic(base_url=server.root, api_key="unused", max_retries=0, timeout=60)
