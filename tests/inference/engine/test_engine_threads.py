"""A CPU step of one decode token alone runs the layers on one torch thread and the output head on all of them
again (ModelRunner.forward_packed, _one_thread_if); a step of several pieces keeps every thread; the thread count
is restored after the step, also when the step fails."""

import pytest
import torch

from inference.engine import SamplingParams
from tests.inference.engine.engine_helpers import make_engine, random_ids


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _watch(model, monkeypatch) -> list[tuple[str, int]]:
    """(where, torch threads) of every first layer call and every head call from now on."""
    seen, layer0, logits = [], model.layers[0].forward, type(model).logits
    monkeypatch.setattr(model.layers[0], "forward", lambda *a: (seen.append(("layers", torch.get_num_threads())),
                                                                layer0(*a))[1])
    monkeypatch.setattr(model, "logits", lambda x: (seen.append(("head", torch.get_num_threads())),
                                                    logits(model, x))[1])
    return seen


def test_one_decode_token_runs_its_layers_on_one_thread(model, monkeypatch, two_threads):
    eng = make_engine(model)
    eng.add_request("solo", random_ids(40, 1), SamplingParams(max_tokens=4, ignore_eos=True))
    eng.step()  # the prompt: many tokens, every thread
    seen = _watch(model, monkeypatch)
    while eng.has_unfinished():
        eng.step()
    assert seen and seen == [("layers", 1), ("head", 2)] * (len(seen) // 2)
    assert torch.get_num_threads() == 2


def test_several_pieces_keep_every_thread(model, monkeypatch, two_threads):
    eng = make_engine(model)
    for rid in ("a", "b"):
        eng.add_request(rid, random_ids(30, ord(rid)), SamplingParams(max_tokens=3, ignore_eos=True))
    seen = _watch(model, monkeypatch)
    while eng.has_unfinished():
        eng.step()
    assert seen and all(n == 2 for _, n in seen)


def test_threads_come_back_after_a_failed_step(model, monkeypatch, two_threads):
    eng = make_engine(model)
    eng.add_request("x", random_ids(20, 3), SamplingParams(max_tokens=3, ignore_eos=True))
    eng.step()

    def broken(*a):
        raise RuntimeError("simulated kernel failure")

    monkeypatch.setattr(model.layers[1], "forward", broken)
    outs = eng.step()
    assert outs[0].finish_reason == "abort" and "simulated kernel failure" in outs[0].error
    assert torch.get_num_threads() == 2
