"""The page itself: `/` (index.html) and `/web/<file>` (its scripts, styles and icon), from api/web/static.

Every answer carries a Content-Security-Policy that allows scripts, styles and connections from this origin only (no
inline script, no eval), `frame-ancestors 'none'` (never framed), `X-Content-Type-Options: nosniff` and no referrer.
"""

from importlib.resources import files

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from api.errors import error_response

router = APIRouter(include_in_schema=False)
STATIC = files("api.web") / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
ASSETS = frozenset(p.name for p in STATIC.iterdir() if p.name != "index.html" and "." in p.name)


def _file(name: str) -> Response:
    data = (STATIC / name).read_bytes()
    return Response(data, media_type=TYPES[name[name.rindex("."):]], headers=HEADERS)


@router.get("/")
def index() -> Response:
    return _file("index.html")


@router.get("/web")
def web() -> RedirectResponse:
    return RedirectResponse("/", headers=HEADERS)


@router.get("/web/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:  # only the package's own files, never a path
        return error_response(404, "not_found", f"no such file {name!r}", HEADERS)
    return _file(name)
