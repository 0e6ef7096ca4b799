"""The FastAPI app factory: `uvicorn api.main:create_app --factory`."""

from fastapi import Depends, FastAPI

from api import errors
from api.edge import Edge
from api.metrics import Metrics
from api.rate_limit import make_limiter
from api.routes import batches, corpora, corpus_questions, digests, documents, health, jobs, results, webhooks
from api.routes.conventions import known_query
from api.settings import ApiSettings
from api.web import install as install_web
from pipeline import logs
from pipeline.records.db import make_engine, session_factory

# Documented on every response of a keyed (/v1) operation; api.edge sends them.
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
KEYED_HEADERS = {
    "RateLimit-Limit": "requests this API key may make in a burst (absent when the service has no rate limit)",
    "RateLimit-Remaining": "requests left in the burst now",
    "RateLimit-Reset": "seconds until the burst is full again",
    "X-Request-Id": "this request's id in the service's logs (the caller's X-Request-Id when it sent one)",
}


def _openapi(app: FastAPI):
    """FastAPI's document, plus the headers every keyed response carries (as shared components), and every error
    response as the one shared ErrorBody in JSON (FastAPI would give a stream route's errors the stream's type)."""
    def build() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        spec = FastAPI.openapi(app)
        spec.setdefault("components", {})["headers"] = {
            name: {"description": text, "schema": {"type": "string" if name == "X-Request-Id" else "integer"}}
            for name, text in KEYED_HEADERS.items()}
        for path, ops in spec["paths"].items():
            if not path.startswith("/v1/"):
                continue
            for op in ops.values():
                for status, response in op["responses"].items():
                    if status.startswith(("4", "5")):
                        response["content"] = {"application/json": {"schema": ERROR_REF}}
                    names = ["X-Request-Id"] if status == "401" else KEYED_HEADERS  # no key, no bucket
                    response.setdefault("headers", {}).update(
                        {name: {"$ref": f"#/components/headers/{name}"} for name in names})
        app.openapi_schema = spec
        return spec

    return build


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The app on `settings`; without them (uvicorn's factory call) the environment's, and this process's logs are
    set up from them too (an app built with explicit settings, as tests do, leaves the process's logging alone)."""
    if settings is None:
        settings = ApiSettings.load()
        logs.configure(settings.log_level, settings.log_format)
    app = FastAPI(title="wholedoc", version="0.2.0",
                  description="Summaries and Q&A over whole documents (PDFs and codebases), never chunked. "
                              "Conventions (auth, errors, idempotency, pages, limits): docs/api-conventions.md.")
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    app.state.sessions = session_factory(app.state.engine)
    app.state.blob_store = settings.blob_store()
    app.state.metrics = Metrics(app.state.sessions)
    app.state.limiter = make_limiter(settings.rate_per_min, settings.rate_burst, settings.redis_url)
    app.add_middleware(Edge)  # inside the metrics: a 401 or 429 it answers is counted too
    app.middleware("http")(app.state.metrics.middleware())
    errors.install(app)
    app.include_router(health.router)
    # JSON bodies are capped here; the upload route streams under its own
    for module in (documents, jobs, results, corpora, corpus_questions, batches, digests, webhooks):
        app.include_router(module.router, max_body_size=settings.max_json_bytes, dependencies=[Depends(known_query)])
    install_web(app, settings.max_json_bytes)  # the web page, /v1/session, page images (docs/web.md)
    app.openapi = _openapi(app)
    return app


def __getattr__(name: str):
    """`uvicorn api.main:app` builds the app from the environment on first access (importing stays side-effect free)."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
