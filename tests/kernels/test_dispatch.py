"""The one Triton/torch switch (kernels.dispatch): CPU tensors take the torch paths unless force_triton() is active,
and every kernels dispatcher follows it."""

import importlib

import pytest
import torch

from kernels.dispatch import force_triton, use_triton
from kernels.layout import rope_tables

ROPE = importlib.import_module("kernels.rope_norm")


def test_cpu_tensors_use_torch_unless_forced_and_the_setting_comes_back():
    x = torch.zeros(1)
    assert not use_triton(x)
    with force_triton():
        assert use_triton(x)
        with force_triton(False):
            assert not use_triton(x)
        assert use_triton(x)
    assert not use_triton(x)
    with pytest.raises(RuntimeError), force_triton():
        raise RuntimeError
    assert not use_triton(x)


def test_a_kernels_dispatcher_follows_the_switch(monkeypatch):
    calls = []
    monkeypatch.setattr(ROPE, "rope_triton", lambda *a: calls.append("triton"))
    monkeypatch.setattr(ROPE, "rope_torch", lambda *a: calls.append("torch"))
    cos, sin = rope_tables(4, 8)
    args = (torch.zeros(2, 8), cos, sin, torch.zeros(2, dtype=torch.int32), 4)
    ROPE.rope(*args)
    with force_triton():
        ROPE.rope(*args)
    assert calls == ["torch", "triton"]
