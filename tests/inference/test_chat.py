"""V4 chat encoding and output parsing against exact strings (docs/model.md#tokenizer-and-chat-encoding); no torch."""

import pytest

from inference.text.chat import (
    REASONING_EFFORT_MAX,
    ChatFormatError,
    ParsedOutput,
    encode_messages,
    parse_output,
    special_tokens_in,
)

TWO_TURNS = [
    {"role": "system", "content": "SYS"},
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
    {"role": "user", "content": "q2"},
]


def test_constants_are_the_v4_strings():
    from inference.text import chat

    assert chat.BOS == "<｜begin▁of▁sentence｜>"
    assert chat.EOS == "<｜end▁of▁sentence｜>"
    assert chat.USER == "<｜User｜>"
    assert chat.ASSISTANT == "<｜Assistant｜>"
    assert (chat.THINK, chat.END_THINK) == ("<think>", "</think>")


def test_two_turns_thinking_on_drops_history_reasoning():
    expected = (
        "<｜begin▁of▁sentence｜>SYS<｜User｜>q1<｜Assistant｜></think>a1<｜end▁of▁sentence｜>"
        "<｜User｜>q2<｜Assistant｜><think>"
    )
    assert encode_messages(TWO_TURNS, thinking=True) == expected


def test_two_turns_thinking_off():
    expected = (
        "<｜begin▁of▁sentence｜>SYS<｜User｜>q1<｜Assistant｜></think>a1<｜end▁of▁sentence｜>"
        "<｜User｜>q2<｜Assistant｜></think>"
    )
    assert encode_messages(TWO_TURNS, thinking=False) == expected


def test_single_question_without_system():
    msgs = [{"role": "user", "content": "Summarize."}]
    assert encode_messages(msgs) == "<｜begin▁of▁sentence｜><｜User｜>Summarize.<｜Assistant｜></think>"
    assert encode_messages(msgs, thinking=True) == "<｜begin▁of▁sentence｜><｜User｜>Summarize.<｜Assistant｜><think>"


def test_no_generation_prompt_leaves_user_turn_open():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "doc"}]
    assert encode_messages(msgs, add_generation_prompt=False) == "<｜begin▁of▁sentence｜>S<｜User｜>doc"


def test_prefix_up_to_question_is_identical_across_questions():
    """The prefix cache relies on BOS+system+user text rendering byte-identically whatever the question."""
    base = [{"role": "system", "content": "S"}]
    a = encode_messages(base + [{"role": "user", "content": "DOC\n\nQuestion: one?"}])
    b = encode_messages(base + [{"role": "user", "content": "DOC\n\nQuestion: two?"}])
    prefix = "<｜begin▁of▁sentence｜>S<｜User｜>DOC\n\nQuestion: "
    assert a.startswith(prefix) and b.startswith(prefix)


def test_max_effort_paragraph_only_in_thinking_max():
    msgs = [{"role": "system", "content": "SYS"}, {"role": "user", "content": "q"}]
    out = encode_messages(msgs, thinking=True, reasoning_effort="max")
    assert out == "<｜begin▁of▁sentence｜>" + REASONING_EFFORT_MAX + "SYS<｜User｜>q<｜Assistant｜><think>"
    assert REASONING_EFFORT_MAX.startswith("Reasoning Effort: Absolute maximum with no shortcuts permitted.\n")
    assert REASONING_EFFORT_MAX.endswith("is left unchecked.\n\n")
    # "high" and None render identically; chat mode ignores the effort
    assert encode_messages(msgs, thinking=True, reasoning_effort="high") == encode_messages(msgs, thinking=True)
    chat_max = encode_messages(msgs, reasoning_effort="max")
    assert chat_max == "<｜begin▁of▁sentence｜>SYS<｜User｜>q<｜Assistant｜></think>"


def test_trailing_assistant_after_last_user_keeps_reasoning_in_thinking_mode():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": "r"}]
    assert encode_messages(msgs, thinking=True) == (
        "<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜><think>r</think>a<｜end▁of▁sentence｜>"
    )
    assert encode_messages(msgs, thinking=False) == (
        "<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜></think>a<｜end▁of▁sentence｜>"
    )


@pytest.mark.parametrize(
    ("messages", "kwargs", "needle"),
    [
        ([], {}, "empty"),
        ([{"role": "tool", "content": "x"}], {}, "role"),
        ([{"role": "user", "content": ["a", "b"]}], {}, "must be a string"),
        ([{"role": "user", "content": "q"}], {"reasoning_effort": "low"}, "reasoning_effort"),
        ([{"role": "assistant", "content": "a"}], {}, "must follow a user"),
        ([{"role": "user", "content": "q"}, {"role": "system", "content": "s"}], {}, "before all"),
        ([{"role": "user", "content": "q", "tools": [{"type": "function"}]}], {}, "tools"),
        (["hello"], {}, "must be a dict"),
    ],
)
def test_bad_messages_raise_typed_error(messages, kwargs, needle):
    with pytest.raises(ChatFormatError, match=needle):
        encode_messages(messages, **kwargs)


def test_special_tokens_in_reports_control_strings():
    assert special_tokens_in("plain <b>text</b>") == []
    assert special_tokens_in("a </think> b <｜end▁of▁sentence｜>") == ["<｜end▁of▁sentence｜>", "</think>"]


def test_parse_thinking_output():
    out = parse_output("let me see</think>The answer.<｜end▁of▁sentence｜>", thinking=True)
    assert out == ParsedOutput(reasoning_content="let me see", content="The answer.")


def test_parse_thinking_output_with_leading_think_tag_and_truncation():
    assert parse_output("<think>abc</think>de", thinking=True) == ParsedOutput("abc", "de")
    # generation stopped (max_tokens) before </think>: everything so far is reasoning
    assert parse_output("still thinking", thinking=True) == ParsedOutput("still thinking", "")


def test_parse_chat_output():
    assert parse_output("Hello.<｜end▁of▁sentence｜>", thinking=False) == ParsedOutput(None, "Hello.")
    assert parse_output("cut off", thinking=False) == ParsedOutput(None, "cut off")


def test_parse_output_separates_dsml_tool_calls():
    block = '<｜DSML｜tool_calls>\n<｜DSML｜invoke name="f">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>'
    out = parse_output("r</think>text\n\n" + block + "<｜end▁of▁sentence｜>", thinking=True)
    assert out == ParsedOutput("r", "text", block)
