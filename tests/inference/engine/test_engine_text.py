"""Text through the engine on the `tiny` preset (V4 tokenizer): deltas rebuild the decoded text; stop strings end a
request with finish_reason "stop" and are not returned."""

import pytest

from inference.engine import Engine, EngineConfig, SamplingParams


def collect(eng: Engine, rid: str, ids: list[int], params: SamplingParams):
    eng.add_request(rid, ids, params)
    toks, text, last = [], "", None
    while eng.has_unfinished():
        for o in eng.step():
            toks += o.new_token_ids
            text += o.new_text
            last = o
    return toks, text, last


@pytest.fixture(scope="module")
def eng(tiny_checkpoint):
    return Engine.from_checkpoint(tiny_checkpoint, EngineConfig(cache_bytes=16 << 20))


def test_deltas_rebuild_the_text_and_stop_strings_cut_it(eng):
    prompt = [0] + eng.tokenizer.encode("Summarize the document.", add_special_tokens=False).ids
    toks, text, last = collect(eng, "g", prompt, SamplingParams(max_tokens=12, ignore_eos=True))
    assert last.finish_reason == "length" and last.completion_tokens == 12 == len(toks)
    assert text == eng.tokenizer.decode(toks, skip_special_tokens=False)
    assert len(text) >= 6
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    want = text[: text.index(stop)]
    toks2, text2, last2 = collect(eng, "s", prompt, SamplingParams(max_tokens=12, ignore_eos=True, stop=(stop,)))
    assert (text2, last2.finish_reason, last2.finished) == (want, "stop", True)
    assert toks2 == toks[: len(toks2)] and len(toks2) < 12
    assert last2.cached_tokens == 0 and eng.stats().cache_blocks_used == 0
