"""The wholedoc inference engine: paged compressed KV cache, prefix caching, chunked prefill, continuous batching."""

from inference.engine.config import EngineConfig
from inference.engine.engine import Engine, EngineStats
from inference.engine.sampling import SamplingParams
from inference.engine.sequence import RequestOutput, RequestProgress

__all__ = ["Engine", "EngineConfig", "EngineStats", "RequestOutput", "RequestProgress", "SamplingParams"]
