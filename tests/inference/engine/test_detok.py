"""Incremental detokenization on the real V4 tokenizer: UTF-8 safe deltas, stop strings removed and held back."""

import pytest

from inference.engine.detok import Detokenizer
from inference.text.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def feed(d: Detokenizer, ids: list[int]) -> tuple[list[str], bool]:
    deltas = []
    for i in ids:
        text, stopped = d.push([i])
        deltas.append(text)
        if stopped:
            return deltas, True
    return deltas, False


def test_deltas_rebuild_the_text_and_never_split_a_character(tok):
    text = "Größe 世界 😀 ok\nnext"
    ids = tok.encode(text, add_special_tokens=False).ids
    d = Detokenizer(tok)
    deltas, stopped = feed(d, ids)
    assert not stopped
    assert "".join(deltas) + d.flush() == text
    assert all("\ufffd" not in x for x in deltas)
    assert any(x == "" for x in deltas)  # the emoji's byte tokens wait until the character is complete


def test_stop_string_is_cut_and_not_returned(tok):
    ids = tok.encode("alpha beta END gamma", add_special_tokens=False).ids
    d = Detokenizer(tok, stop=("END",))
    deltas, stopped = feed(d, ids)
    assert stopped and "".join(deltas) == "alpha beta "


def test_possible_stop_prefix_is_held_back_then_released(tok):
    ids = tok.encode("one two thr", add_special_tokens=False).ids
    d = Detokenizer(tok, stop=("three",))
    deltas, stopped = feed(d, ids)
    assert not stopped and "".join(deltas) == "one two "  # "thr" might start "three"
    assert d.flush() == "thr"


def test_earliest_of_several_stop_strings_wins(tok):
    ids = tok.encode("x = 1; y = 2. done", add_special_tokens=False).ids
    d = Detokenizer(tok, stop=(".", ";"))
    deltas, stopped = feed(d, ids)
    assert stopped and "".join(deltas) == "x = 1"
