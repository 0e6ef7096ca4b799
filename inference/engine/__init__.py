"""The wholedoc inference engine: paged compressed KV cache, prefix caching, chunked prefill, continuous batching.

Names are imported on first use, so `python -m inference.engine.layout` runs without importing the model."""

import importlib

_HOMES = {"Engine": "engine", "EngineStats": "engine", "EngineConfig": "config", "SamplingParams": "sampling",
          "RequestOutput": "sequence", "RequestProgress": "sequence"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'inference.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"inference.engine.{_HOMES[name]}"), name)
