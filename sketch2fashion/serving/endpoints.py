"""The public endpoints: form in, checks, Colorizer/Catalog calls, JSON or a photo (JPEG or PNG) out.

Each handler answers every failure itself: `BadRequest` -> its 4xx, a dependency that cannot
answer -> 503 with `Retry-After`, anything unexpected -> 500 (logged); the body is always
`{"error": "..."}` and every request but the product photos (GET /catalog/images/{id}) is counted
in `s2f_requests_total{endpoint, category, outcome}`. Each form takes exactly the fields its
operation declares in serving/contract.py, which the OpenAPI schema is made from.
"""
from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import numpy as np
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from sketch2fashion.imaging.io import fit_within
from sketch2fashion.serving import metrics
from sketch2fashion.serving.auto_category import NO_CLASSIFIER, Classify
from sketch2fashion.serving.config import AUTO_CATEGORY, PHOTO_FORMATS, PHOTO_MEDIA_TYPES, ServingConfig
from sketch2fashion.serving.contract import RETRY_STATUSES, FormSpec, operations
from sketch2fashion.serving.io_types import CatalogAnswer, CatalogQuery, ColorizeJob
from sketch2fashion.serving.model_status import other_models
from sketch2fashion.serving.requests import (
    BadRequest, Form, decode_image, parse_category, parse_photo_format, parse_text, parse_top_k, read_form,
    require_file,
)
from sketch2fashion.serving.sketches import PreparedSketch, encode_photo, prepare_sketch

log = logging.getLogger("sketch2fashion.serving")
SEARCH_DRAWING_SIDE = 512
"""The drawing sent to the catalog search is shrunk to this; its encoder works at ~100 px."""
MAX_PRODUCT_ID_CHARS = 512
"""GET /catalog/images/{id}: longer ids are answered 404 without asking the Catalog service."""


class Unavailable(Exception):
    """A dependency (Colorizer, Catalog) cannot answer now: 503."""


class Endpoints:
    """Handlers bound to the API service's colorizer (serving/colorizers.py) and Catalog proxy."""

    def __init__(self, config: ServingConfig, colorizer: Any, catalog: Any,
                 classify: Classify | None) -> None:
        self.config = config
        self.limits = config.limits
        self.colorizer = colorizer
        self.catalog = catalog
        self.classify = classify
        self.forms: dict[str, FormSpec] = {name: op.form for name, op in operations(config).items() if op.form}
        self._last_status: tuple[float, dict[str, Any]] | None = None

    # -- routes -------------------------------------------------------------------------------
    async def colorize(self, request: Request) -> Response:
        return await self._guard("colorize", request, self._colorize)

    async def search(self, request: Request) -> Response:
        return await self._guard("search", request, self._search)

    async def colorize_and_search(self, request: Request) -> Response:
        return await self._guard("colorize_and_search", request, self._colorize_and_search)

    async def models(self, request: Request) -> Response:
        return await self._guard("models", request, self._models)

    async def catalog_image(self, request: Request) -> Response:
        # Not counted in s2f_requests: a page shows a dozen photos per search, which would
        # drown the API's request rate and error ratios.
        return await self._guard("catalog_image", request, self._catalog_image, counted=False)

    # -- handlers -----------------------------------------------------------------------------
    async def _colorize(self, request: Request, labels: dict[str, str]) -> Response:
        form = await self._read_form(request, "colorize")
        category = parse_category(form.text("category"), self.config.categories, allow_auto=True, required=True)
        labels["category"] = category
        fmt = self._photo_format(form.text("format"))
        prepared = await self._prepare(require_file(form, "sketch", "the drawing as PNG or JPEG"))
        category = labels["category"] = await self._resolve_category(category, prepared)
        image, version = await self._generate(prepared, category)
        photo = await self._encode(image, fmt)
        return Response(photo, media_type=PHOTO_MEDIA_TYPES[fmt],
                        headers={"X-S2F-Category": category, "X-S2F-Model-Version": str(version)})

    async def _search(self, request: Request, labels: dict[str, str]) -> Response:
        form = await self._read_form(request, "search")
        category = parse_category(form.text("category"), self.config.categories, allow_auto=False,
                                  required=False)
        labels["category"] = category or metrics.NO_CATEGORY
        top_k = parse_top_k(form.text("top_k"), self.limits)
        text = parse_text(form.text("text"), self.limits)
        photo = await self._decode(require_file(form, "image", "a product photo as PNG or JPEG"), "image")
        drawing = hint_pixels = None
        if "sketch" in form.files:
            prepared = await self._prepare(form.files["sketch"])
            drawing, hint_pixels = fit_within(prepared.drawing, SEARCH_DRAWING_SIDE), prepared.hint_pixels
        answer = await self._find("search", photo=photo, photo_is_upload=True, sketch=drawing,
                                  hint_pixels=hint_pixels, text=text, category=category, top_k=top_k)
        return JSONResponse({"products": answer.products, "catalog_version": answer.version})

    async def _colorize_and_search(self, request: Request, labels: dict[str, str]) -> Response:
        form = await self._read_form(request, "colorize_and_search")
        category = parse_category(form.text("category"), self.config.categories, allow_auto=True, required=True)
        labels["category"] = category
        top_k = parse_top_k(form.text("top_k"), self.limits)
        text = parse_text(form.text("text"), self.limits)
        fmt = self._photo_format(form.text("format"))
        prepared = await self._prepare(require_file(form, "sketch", "the drawing as PNG or JPEG"))
        category = labels["category"] = await self._resolve_category(category, prepared)
        image, version = await self._generate(prepared, category)
        photo = await self._encode(image, fmt)
        answer = await self._find("colorize_and_search", photo=image,
                                  sketch=fit_within(prepared.drawing, SEARCH_DRAWING_SIDE),
                                  hint_pixels=prepared.hint_pixels, text=text, category=category, top_k=top_k)
        return JSONResponse({"image": base64.b64encode(photo).decode("ascii"), "image_type": PHOTO_MEDIA_TYPES[fmt],
                             "category": category, "model_version": version, "products": answer.products,
                             "catalog_version": answer.version,
                             "open_ends": np.round(prepared.open_ends, 4).tolist()})

    async def _models(self, request: Request, labels: dict[str, str]) -> Response:
        try:
            status = await self.colorizer.status()
            self._last_status = (time.time(), status)
        except Exception as exc:  # noqa: BLE001
            # A Colorizer stalled for a moment (loading or compiling a champion on a slow CPU) must
            # not blank the page's model list: answer what it said last, and say how old that is.
            if self._last_status is None:
                raise Unavailable(f"the colorizer is not answering ({type(exc).__name__})") from exc
            said_at, last = self._last_status
            status = {**last, "last_poll_error": f"the colorizer is not answering ({type(exc).__name__}); "
                                                 f"this is its status of {time.time() - said_at:.0f} s ago"}
        return JSONResponse({**status, **other_models(self.config, self.classify)})

    async def _catalog_image(self, request: Request, labels: dict[str, str]) -> Response:
        product_id = request.path_params["product_id"]
        if not product_id or len(product_id) > MAX_PRODUCT_ID_CHARS:
            raise BadRequest("no such product", 404)
        try:
            answer = await self.catalog.to_async.product_image(product_id=product_id)
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"the catalog cannot answer now ({_why(exc)}); retry shortly") from exc
        if answer.status == 404:
            raise BadRequest(answer.error or "no such product", 404)
        if answer.error or answer.data is None:
            raise Unavailable(answer.error or "the catalog returned no photo")
        return Response(np.asarray(answer.data, dtype=np.uint8).tobytes(), media_type=answer.content_type,
                        headers={"Cache-Control": "public, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})

    # -- steps --------------------------------------------------------------------------------
    async def _read_form(self, request: Request, operation: str) -> Form:
        declared = self.forms[operation]
        return await read_form(request, files=declared.files, texts=declared.texts, limits=self.limits)

    async def _decode(self, data: bytes, field: str) -> np.ndarray:
        return await anyio.to_thread.run_sync(decode_image, data, field, self.limits)

    async def _prepare(self, data: bytes) -> PreparedSketch:
        rgb = await self._decode(data, "sketch")
        prepared = await anyio.to_thread.run_sync(prepare_sketch, rgb, self.config.image_size)
        metrics.observe_hints(prepared.hints)
        return prepared

    def _photo_format(self, value: str | None) -> str:
        return parse_photo_format(value, self.config.photo_format, PHOTO_FORMATS)

    async def _encode(self, image: np.ndarray, fmt: str) -> bytes:
        return await anyio.to_thread.run_sync(lambda: encode_photo(
            image, fmt, png_compression=self.config.png_compression, jpeg_quality=self.config.jpeg_quality))

    async def _resolve_category(self, category: str, prepared: PreparedSketch) -> str:
        """The asked category, or the classifier's answer for `auto` (the hook in auto_category)."""
        if category != AUTO_CATEGORY:
            return category
        if self.classify is None:
            raise BadRequest(NO_CLASSIFIER, 422)
        return await anyio.to_thread.run_sync(self.classify, prepared.drawing)

    async def _generate(self, prepared: PreparedSketch, category: str) -> tuple[np.ndarray, int | None]:
        job = ColorizeJob(category=category, sketch=prepared.packed)
        started = time.perf_counter()
        try:
            result = await self.colorizer.colorize(job)
        except Exception as exc:  # noqa: BLE001 - overload shedding (503) or the service is down
            raise Unavailable(f"the colorizer cannot take this sketch now ({_why(exc)}); retry shortly") from exc
        metrics.observe_generation(category, time.perf_counter() - started)
        if result.error or result.image is None:
            raise Unavailable(result.error or "the colorizer returned no image")
        return np.asarray(result.image, dtype=np.uint8), result.version

    async def _find(self, endpoint: str, **query: Any) -> CatalogAnswer:
        started = time.perf_counter()
        try:
            answer = await self.catalog.to_async.search(CatalogQuery(**query))
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"the catalog search cannot answer now ({_why(exc)}); retry shortly") from exc
        metrics.observe_search(endpoint, time.perf_counter() - started)
        if answer.error:
            raise Unavailable(answer.error)
        return answer

    # -- error handling and counting ----------------------------------------------------------
    async def _guard(self, endpoint: str, request: Request,
                     handler: Callable[[Request, dict[str, str]], Awaitable[Response]],
                     counted: bool = True) -> Response:
        labels = {"category": metrics.NO_CATEGORY}
        try:
            response = await handler(request, labels)
            outcome = "ok"
        except BadRequest as exc:
            response, outcome = self._error(exc.message, exc.status), "bad_request"
        except Unavailable as exc:
            response, outcome = self._error(str(exc), 503), "unavailable"
        except ClientDisconnect:  # hung up mid-upload: the client's doing, and nobody reads the answer
            response, outcome = self._error("the client closed the connection before the whole request", 400), \
                "bad_request"
        except Exception:  # noqa: BLE001 - a bug: log it, answer 500 JSON, keep serving
            log.exception("%s failed", endpoint)
            response, outcome = self._error("internal error; the server log has the details", 500), "error"
        if counted:
            metrics.count_request(endpoint, labels.get("category"), outcome)
        return response

    def _error(self, message: str, status: int) -> JSONResponse:
        """The error body; a busy or not-ready answer also says when to retry."""
        headers = {"Retry-After": str(self.config.retry_after)} if status in RETRY_STATUSES else None
        return JSONResponse({"error": message}, status_code=status, headers=headers)


def _why(exc: Exception) -> str:
    code = getattr(getattr(exc, "error_code", None), "value", None)
    return f"HTTP {code}" if code else type(exc).__name__
