"""Structured logs for the API, the workers and the command line (structlog): one JSON object per line when the
output is not a terminal, readable lines on one (`WHOLEDOC_LOG_FORMAT` auto | json | console).

Every logger goes through the same renderer: our modules' stdlib loggers, uvicorn's and Celery's, and structlog's
(`log = structlog.get_logger()`, for events with fields). Context bound with `bound(...)` (job_id, tenant_id,
request_id, http_request_id) is added to every line logged inside it, in that task or request, so one job can be
followed across the API, the worker and the inference server by grepping its id. A stdlib call's
`extra={"request_id": …}` becomes a field too.
"""

import logging
import sys
from contextlib import AbstractContextManager
from typing import TextIO

import structlog

# loggers that libraries configure with their own handlers: routed through ours instead
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.redirected")


def _shared() -> list:
    return [structlog.contextvars.merge_contextvars, structlog.stdlib.add_logger_name, structlog.stdlib.add_log_level,
            structlog.stdlib.ExtraAdder(), structlog.processors.TimeStamper(fmt="iso", utc=True)]


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route every log record of this process to `stream` (default stderr) as JSON lines or readable lines."""
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not getattr(stream, "isatty", lambda: False)())
    renderer = (structlog.processors.JSONRenderer() if as_json
                else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *([structlog.processors.format_exc_info] if as_json else []), renderer]))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [], True
    structlog.configure(processors=[*_shared()[:1], structlog.stdlib.filter_by_level, *_shared()[1:],
                                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
                        logger_factory=structlog.stdlib.LoggerFactory(),
                        wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=True)


def bound(**fields) -> AbstractContextManager:
    """Add `fields` to every line logged inside the block (this thread or task); None values are left out."""
    return structlog.contextvars.bound_contextvars(**{k: v for k, v in fields.items() if v is not None})


def bind(**fields) -> None:
    """Add `fields` to every later line of the current context (a request handled by the API)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def get_logger(name: str | None = None):
    return structlog.get_logger(name)
