"""OpenAI-compatible inference client: streaming, usage in both spellings, retries, cancellation, progress."""

from pipeline.client.backoff import backoff_delay, parse_retry_after
from pipeline.client.client import InferenceClient, document_prefix_tag
from pipeline.client.config import ClientConfig
from pipeline.client.events import CacheProbe, Completion, ModelInfo, Progress, RequestStatus
from pipeline.client.usage import Usage, parse_usage

__all__ = [
    "CacheProbe", "ClientConfig", "Completion", "InferenceClient", "ModelInfo", "Progress", "RequestStatus", "Usage",
    "backoff_delay", "document_prefix_tag", "parse_retry_after", "parse_usage",
]
