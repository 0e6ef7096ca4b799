"""The FastAPI app factory: `uvicorn api.main:create_app --factory`."""

from fastapi import FastAPI

from api import errors
from api.metrics import Metrics
from api.rate_limit import make_limiter
from api.routes import documents, health, jobs, results
from api.settings import ApiSettings
from pipeline.records.db import make_engine, session_factory


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings.load()
    app = FastAPI(title="wholedoc", version="0.1.0",
                  description="Summaries and Q&A over whole documents (PDFs and codebases), never chunked.")
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    app.state.sessions = session_factory(app.state.engine)
    app.state.blob_store = settings.blob_store()
    app.state.metrics = Metrics(app.state.sessions)
    app.state.limiter = make_limiter(settings.rate_per_min, settings.rate_burst, settings.redis_url)
    app.middleware("http")(app.state.metrics.middleware())
    errors.install(app)
    for module in (health, documents, jobs, results):
        app.include_router(module.router)
    return app


def __getattr__(name: str):
    """`uvicorn api.main:app` builds the app from the environment on first access (importing stays side-effect free)."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
