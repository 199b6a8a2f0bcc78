"""The ASGI app mounted on the API service: the public endpoints and the static page.

Mounted at "/" with `bentoml.asgi_app`; BentoML's own routes (/livez, /readyz, /metrics, the
internal APIs) come first, so only these paths reach it. Handlers are looked up on the running
API service instance (`bentoml.get_current_service()`), which owns the dependency proxies.
The page at GET / and its assets under /static are plain files in STATIC_DIR (no build step).
GET /catalog/images/{id} serves a product's cached photo, for feeds whose `image_link` is a
local path a browser cannot load (the demo feed); the id may hold "/", the Catalog service
looks it up as a whole and only ever reads the file its card names.
"""
from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_FILE = "index.html"


def _endpoint(name: str):
    async def call(request: Request) -> Response:
        import bentoml

        service = bentoml.get_current_service()
        return await getattr(service.endpoints, name)(request)

    call.__name__ = name
    return call


async def index(_: Request) -> Response:
    return FileResponse(STATIC_DIR / INDEX_FILE, media_type="text/html")


def make_app() -> Starlette:
    return Starlette(routes=[
        Route("/", index, methods=["GET"]),
        Route("/colorize", _endpoint("colorize"), methods=["POST"]),
        Route("/search", _endpoint("search"), methods=["POST"]),
        Route("/colorize_and_search", _endpoint("colorize_and_search"), methods=["POST"]),
        Route("/models", _endpoint("models"), methods=["GET"]),
        Route("/catalog/images/{product_id:path}", _endpoint("catalog_image"), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ])
