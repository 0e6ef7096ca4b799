"""The FastAPI app factory: routes, the single error handler, and the engine thread's lifetime."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from inference.server import anthropic_routes, openai_routes, prefixes_routes, requests_routes
from inference.server.config import ServerConfig
from inference.server.errors import HANDLED, handle_error
from inference.server.generation import Services
from inference.server.metrics import ServerMetrics
from inference.server.request_log import RequestIdLog
from inference.server.runner import EngineRunner


def create_app(engine, config: ServerConfig | None = None) -> FastAPI:
    """An app serving `engine` (inference.engine.Engine or anything with its API); the engine thread runs while the
    app's lifespan does."""
    config = config or ServerConfig()
    runner = EngineRunner(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner.start()
        try:
            yield
        finally:
            runner.close()

    app = FastAPI(title="wholedoc inference", lifespan=lifespan)
    app.state.services = Services(runner, config, ServerMetrics(runner))
    # NOTE: one handler for everything; known errors are listed so Starlette answers them without a traceback
    for error in (*HANDLED, RequestValidationError, Exception):
        app.add_exception_handler(error, handle_error)
    for module in (openai_routes, anthropic_routes, requests_routes, prefixes_routes):
        app.include_router(module.router)
    app.add_middleware(RequestIdLog)
    return app
