"""`python -m inference.generate --chat MSG [--thinking on|off] [--reference-numerics on|off]` on a tiny checkpoint."""

import json

import pytest

from inference.checkpoint.dev import write_checkpoint
from inference.checkpoint.presets import preset_config
from inference.generate import main
from inference.text.tokenizer import load_tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """The tiny preset: real V4 vocabulary, so devcheckpoint copies the real tokenizer next to the weights."""
    return write_checkpoint(tmp_path_factory.mktemp("chat"), preset_config("tiny"), seed=1)


def run(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_chat_prompt_is_the_v4_encoding(ckpt, capsys):
    hi = load_tokenizer().encode("hello", add_special_tokens=False).ids
    on = run(capsys, "--checkpoint", str(ckpt), "--chat", "hello", "--thinking", "on", "--max-new-tokens", "3",
             "--greedy", "--ignore-eos")
    # BOS <｜User｜> hello <｜Assistant｜> <think>
    assert on["prompt_ids"] == [0, 128803, *hi, 128804, 128821]
    assert len(on["new_ids"]) == 3 and isinstance(on["reasoning_content"], str) and isinstance(on["content"], str)
    off = run(capsys, "--checkpoint", str(ckpt), "--chat", "hello", "--max-new-tokens", "2", "--greedy")
    assert off["prompt_ids"] == [0, 128803, *hi, 128804, 128822]  # thinking off by default: </think>
    assert off["reasoning_content"] is None


def test_reference_numerics_switch_reaches_the_model(ckpt, capsys):
    args = ["--checkpoint", str(ckpt), "--chat", "hello", "--max-new-tokens", "1", "--greedy"]
    assert run(capsys, *args)["reference_numerics"] is False  # no quantization_config in this checkpoint
    assert run(capsys, *args, "--reference-numerics", "on")["reference_numerics"] is True


def test_bad_thinking_value_is_a_usage_error(ckpt, capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(ckpt), "--chat", "hello", "--thinking", "maybe"])
