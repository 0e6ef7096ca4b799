"""ReasoningSplitter: streamed text routed to reasoning / content exactly as chat.parse_output splits the whole."""

import pytest

from inference.server.reasoning import ReasoningSplitter
from inference.text.chat import parse_output


def run(pieces, thinking):
    s = ReasoningSplitter(thinking=thinking)
    out = [p for piece in pieces for p in s.feed(piece)] + s.flush()
    reasoning = "".join(t for k, t in out if k == "reasoning")
    content = "".join(t for k, t in out if k == "content")
    return out, reasoning, content


def test_thinking_starts_in_reasoning_and_switches_at_end_think():
    out, reasoning, content = run(["Let me ", "see.</think>The ", "answer."], thinking=True)
    assert reasoning == "Let me see."
    assert content == "The answer."
    assert out[0] == ("reasoning", "Let me ")


def test_end_think_split_across_deltas_never_leaks_part_of_the_tag():
    out, reasoning, content = run(["abc</th", "ink>", "xyz"], thinking=True)
    assert (reasoning, content) == ("abc", "xyz")
    assert all("<" not in t and ">" not in t for _, t in out)


def test_thinking_without_end_think_is_all_reasoning():
    _, reasoning, content = run(["never ", "closes"], thinking=True)
    assert (reasoning, content) == ("never closes", "")


def test_thinking_off_is_all_content_and_eos_text_ends_it():
    _, reasoning, content = run(["Hello", " world<｜end▁of▁sentence｜>trailing"], thinking=False)
    assert (reasoning, content) == ("", "Hello world")


def test_a_partial_marker_at_the_end_is_plain_text():
    _, reasoning, content = run(["a </thi"], thinking=True)
    assert (reasoning, content) == ("a </thi", "")


def test_leading_think_tag_is_dropped():
    _, reasoning, content = run(["<thi", "nk>idea</think>done"], thinking=True)
    assert (reasoning, content) == ("idea", "done")


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("text", ["r1 r2</think>c1 c2", "<think>x</think>y<｜end▁of▁sentence｜>", "plain", "</think>"])
def test_streamed_split_matches_parse_output(text, thinking):
    """Every one-character split gives what parse_output gives for the whole text."""
    expected = parse_output(text, thinking=thinking)
    _, reasoning, content = run(list(text), thinking=thinking)
    assert content == expected.content
    assert reasoning == (expected.reasoning_content or "")
