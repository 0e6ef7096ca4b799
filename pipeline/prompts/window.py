"""The model's window, and the answer for a request that cannot fit it (docs/over-window.md).

The window a job plans for is the endpoint's own (`GET /v1/models` → `max_model_len`, which wholedoc's server and
vLLM report), else the configured `WHOLEDOC_MAX_MODEL_LEN`, else DeepSeek-V4's 1,048,576. A summary or question
whose prompt and answer do not fit is refused before any inference with `OverWindow`: both counts, the window and
the way out (`over_window: "sections"`). The API refuses at once when the document's token count alone (known since
ingest) rules it out; the job checks the exact prompt again before sending it.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import TYPE_CHECKING

from pipeline.document import ExtractedDocument, Kind
from pipeline.errors import InferenceError, OverWindow
from pipeline.prompts.budget import V4_WINDOW, prompt_tokens
from pipeline.prompts.builders import QUESTION_MAX_TOKENS, THINKING_TOKENS, question_prompt, summary_prompt

if TYPE_CHECKING:
    from pipeline.client import InferenceClient

log = logging.getLogger(__name__)
REPORTED_FOR = 60.0  # seconds an endpoint's reported window is reused in a process before it is asked again
_reported: dict[tuple[str, str], tuple[float, int | None]] = {}  # (url, model) → (when asked, its answer)
_reported_lock = threading.Lock()

HINT = ('summarize it in sections with `--over-window sections` (API: `"over_window": "sections"`), or ask about it '
        "with the same option")


def window_tokens(reported: int | None = None, configured: int | None = None) -> int:
    """The window to plan for: the endpoint's when it reports one, else the configured one, else V4's."""
    for value in (reported, configured):
        if value is not None and value > 0:
            return int(value)
    return V4_WINDOW


def reported_window(client: InferenceClient, *, now: float | None = None) -> int | None:
    """The endpoint's own window (`GET /v1/models` → the configured model's max_model_len; None when it does not
    say), asked at most once per REPORTED_FOR seconds per endpoint URL and model in this process. An endpoint that
    cannot be asked (an InferenceError: down, refused) is not an error here: None, and the next call asks again."""
    key = (client.config.base_url, client.config.model)
    now = time.monotonic() if now is None else now
    with _reported_lock:
        known = _reported.get(key)
    if known is not None and now - known[0] < REPORTED_FOR:
        return known[1]
    try:
        value = client.max_model_len()
    except InferenceError as exc:
        log.info("the endpoint did not report its window (%s); planning for the configured one", exc)
        return None
    with _reported_lock:
        _reported[key] = (now, value)
    return value


def endpoint_window(client: InferenceClient | None, configured: int | None) -> int:
    """The window a job (or the API, planning as the job will) uses: `client`'s reported one (cached, see
    reported_window), else `configured` (WHOLEDOC_MAX_MODEL_LEN), else V4's. No client: no endpoint to ask."""
    return window_tokens(reported_window(client) if client is not None else None, configured)


def over_window(document_tokens: int, needed_tokens: int, window: int) -> OverWindow:
    """The refusal, with the counts a person can act on (thousands separated) and the way out."""
    return OverWindow(
        f"the document is {document_tokens:,} tokens; with the answer it needs {needed_tokens:,}, the window is "
        f"{window:,}: {HINT}",
        document_tokens=document_tokens, needed_tokens=needed_tokens, window_tokens=window,
    )


def output_tokens(max_tokens: int, thinking: bool) -> int:
    """The max_tokens a job sends: the answer's cap, plus the reasoning's room when thinking is on."""
    return max_tokens + (THINKING_TOKENS if thinking else 0)


@lru_cache(maxsize=64)
def _overhead(kind: str, title: str | None, style: str | None, tokenizer_path: str | None) -> int:
    """Prompt tokens around an empty document: chat framing, system text, the block's tags and the task."""
    doc = ExtractedDocument(Kind(kind), "", (), {"title": title} if title else {})
    if style is None:
        prompt = question_prompt(doc, "q", max_tokens=QUESTION_MAX_TOKENS, tokenizer_path=tokenizer_path)
    else:
        prompt = summary_prompt(doc, style, tokenizer_path=tokenizer_path)
    return prompt_tokens(prompt, tokenizer_path=tokenizer_path)


def refuse_if_over(document_tokens: int | None, answer_tokens: int, window: int, *, kind: str, title: str | None,
                   style: str | None, tokenizer_path: str | None = None) -> None:
    """Raise OverWindow when the document's tokens plus the answer's already exceed the window (a lower bound on
    what the prompt needs, so only requests that cannot fit are refused); `style` None is a question. The message
    counts the prompt's framing too."""
    if document_tokens is None or document_tokens + answer_tokens <= window:
        return
    needed = document_tokens + answer_tokens + _overhead(kind, title, style, tokenizer_path)
    raise over_window(document_tokens, needed, window)
