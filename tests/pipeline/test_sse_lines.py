"""SSE line splitting: lines end at CRLF, CR or LF only (the SSE grammar), whatever the chunking."""

import pytest

from pipeline.client.stream import sse_lines

TEXT = 'data: {"a": "x\u2028y\x85z\u2029\x0b\x0c\x1c\x1d\x1e"}\r\n\r\n: progress {}\rdata: [DONE]\n\n'
LINES = ['data: {"a": "x\u2028y\x85z\u2029\x0b\x0c\x1c\x1d\x1e"}', "", ": progress {}", "data: [DONE]", ""]


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(TEXT)])
def test_only_cr_and_lf_end_a_line_at_any_chunk_size(size):
    """A CRLF split across two chunks is one line end, not two; the other Unicode breaks stay inside the line."""
    chunks = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    assert list(sse_lines(chunks)) == LINES


def test_a_last_line_without_terminator_is_kept():
    assert list(sse_lines(["data: [DONE]"])) == ["data: [DONE]"]
    assert list(sse_lines(["a\r"])) == ["a"]
    assert list(sse_lines(["a\r", "b"])) == ["a", "b"]
