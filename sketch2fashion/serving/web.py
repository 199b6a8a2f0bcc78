"""The ASGI app mounted on the API service: the public endpoints, their OpenAPI schema, the page.

A FastAPI app mounted at "/" with `bentoml.asgi_app`; BentoML's own routes (/livez, /readyz,
/metrics, the internal APIs) come first, so only these paths reach it. Each public route is
declared from `contract.operations(config)`: FastAPI generates /openapi.json and the Swagger UI at
/docs from those declarations, but never parses a body itself; the handler gets the raw request
and `endpoints.Endpoints` reads the form (serving/requests.py), so a bad upload keeps its
4xx `{"error": ...}`. Handlers are looked up on the running API service instance
(`bentoml.get_current_service()`), which owns the dependency proxies.

The page at GET / and its assets under /static are plain files in STATIC_DIR (no build step).
The Swagger UI's script and style are BentoML's own copies, served under /docs/assets, so the
docs work on a machine without internet. GET /catalog/images/{id} serves a product's cached
photo, for feeds whose `image_link` is a local path a browser cannot load (the demo feed); the id
may hold "/", the Catalog service looks it up as a whole and only ever reads the file its card names.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from sketch2fashion.serving.config import ServingConfig
from sketch2fashion.serving.contract import Operation, operations

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_FILE = "index.html"
OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
DOCS_ASSETS = "/docs/assets"
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-light-32x32.png")
TITLE = "Sketch2Fashion API"


def _endpoint(name: str):
    async def call(request: Request) -> Response:
        import bentoml

        service = bentoml.get_current_service()
        return await getattr(service.endpoints, name)(request)

    call.__name__ = name
    return call


async def index(_: Request) -> Response:
    return FileResponse(STATIC_DIR / INDEX_FILE, media_type="text/html")


def swagger_assets() -> Path | None:
    """BentoML's bundled Swagger UI files (None if a BentoML release stops shipping them)."""
    from bentoml._internal import server

    folder = Path(server.__file__).resolve().parent / "static_content"
    return folder if all((folder / name).is_file() for name in SWAGGER_FILES) else None


def make_app(config: ServingConfig) -> FastAPI:
    app = FastAPI(title=TITLE, version=_version(), openapi_url=OPENAPI_PATH, docs_url=None, redoc_url=None,
                  description="Draw a garment, get a photo of it and the shop's products that look like it. "
                              "Every error answer is `{\"error\": \"...\"}`; 429 and 503 carry `Retry-After`.")
    for op in operations(config).values():
        _declare(app, op)
    assets = swagger_assets()
    if assets is not None:
        app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> Response:
        script, style, icon = (f"{DOCS_ASSETS}/{name}" for name in SWAGGER_FILES)
        kwargs = ({"swagger_js_url": script, "swagger_css_url": style, "swagger_favicon_url": icon}
                  if assets is not None else {})
        return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title=f"{TITLE} - docs", **kwargs)

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # An error the router raises (a wrong method) keeps the API's error body too.
    app.add_exception_handler(HTTPException, _http_error)
    return app


def _declare(app: FastAPI, op: Operation) -> None:
    path = op.path
    for param in op.path_parameters:  # a path parameter may hold "/" (product ids do)
        path = path.replace(f"{{{param['name']}}}", f"{{{param['name']}:path}}")
    app.add_api_route(path, _endpoint(op.operation_id), methods=[op.method], operation_id=op.operation_id,
                      summary=op.summary, description=op.description, response_class=Response,
                      responses=op.responses(), openapi_extra=op.openapi_extra())


async def _http_error(request: Request, exc: HTTPException) -> Response:
    allowed = (exc.headers or {}).get("Allow")
    message = (f"{request.method} is not allowed on {request.url.path}; use {allowed}" if allowed
               else str(exc.detail))
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sketch2fashion")
    except PackageNotFoundError:
        return "0"
