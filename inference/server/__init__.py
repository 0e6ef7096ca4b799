"""wholedoc's inference HTTP server: OpenAI and Anthropic chat APIs, request progress, cache probes, metrics."""

from inference.server.app import create_app
from inference.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
