"""The web page for people (docs/web.md): static HTML, CSS and JavaScript served from this package (no build step, no
CDN), the sign-in session routes (`/v1/session`) and cited pages as images (`/v1/documents/{id}/pages/{n}.png`)."""

from fastapi import Depends, FastAPI

from api.routes.conventions import known_query


def install(app: FastAPI, max_json_bytes: int) -> None:
    from api.web import page_image, pages, session

    for module in (session, page_image):
        app.include_router(module.router, max_body_size=max_json_bytes, dependencies=[Depends(known_query)])
    app.include_router(pages.router)
