"""A Python client for the Sketch2Fashion API: `Client` (sync) and `AsyncClient`, on httpx.

One method per public operation (the ones /openapi.json lists), returning typed results: a
`Photo` (the bytes and media type; `.image()` as PIL, `.array()` as numpy RGB) and `Product`
cards. A 4xx raises `RequestRejected` (`NotFound` for 404) carrying the server's one-line
message; 429 and 503 mean "busy or not ready, the request was fine", so they are retried with
exponential backoff, never sooner than the answer's `Retry-After`, and raise `ServiceBusy` once
the retries are spent. Every call has a timeout.

    from sketch2fashion.client import Client
    with Client("http://127.0.0.1:3000") as api:
        photo = api.colorize("sketch.png", "top")
        photo.save("photo.png")
        for product in api.search(photo.data, sketch="sketch.png", text="red", top_k=5):
            print(product.score, product.title)
"""
from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar, Union
from urllib.parse import quote

import httpx
import numpy as np
from PIL import Image

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
"""Read timeout as long as the server's own (`serving.traffic.timeout`, 60 s by default)."""
RETRY_STATUSES = frozenset({429, 503})
ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]
"""A file path, encoded PNG/JPEG bytes, a PIL image, or an RGB uint8 array (sent as PNG)."""
T = TypeVar("T")


# --- errors --------------------------------------------------------------------------------------

class ApiError(Exception):
    """The API did not give the answer asked for; `message` is the server's (or ours) in one line."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class RequestRejected(ApiError):
    """A 4xx: this request is wrong (a field, a file, a size); sending it again will not help."""


class NotFound(RequestRejected):
    """404: no such product (or photo)."""


class ServiceBusy(ApiError):
    """429 or 503 still after the retries: too many requests in flight, or a model or index not ready."""


class ServerError(ApiError):
    """A 5xx other than 503, or an answer that is not what the API declares."""


class Unreachable(ApiError):
    """No answer at all: the server is down, the address is wrong, or the call timed out."""


# --- results -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Product:
    """A product card from a search answer, best first."""

    id: str
    title: str
    link: str
    image_link: str
    price: float | None
    currency: str
    category: str
    score: float

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Product:
        return cls(**{f.name: row.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Photo:
    """An image the API sent: a generated photo (with its category and model version) or a product's."""

    data: bytes
    media_type: str
    category: str | None = None
    model_version: int | None = None

    def image(self) -> Image.Image:
        """As an RGB PIL image."""
        with Image.open(io.BytesIO(self.data)) as img:
            return img.convert("RGB")

    def array(self) -> np.ndarray:
        """As an H x W x 3 uint8 RGB array."""
        return np.asarray(self.image(), dtype=np.uint8)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bytes as sent (PNG or JPEG) to `path`."""
        path = Path(path)
        path.write_bytes(self.data)
        return path


@dataclass(frozen=True)
class ColorizeAndSearchResult:
    photo: Photo
    products: list[Product]
    catalog_version: str | None = None
    """The published index version that ranked the products."""


@dataclass(frozen=True)
class ModelInfo:
    """One category's serving champion; None fields while none is loaded."""

    category: str
    version: int | None
    epoch: int | None
    ssim: float | None
    run_id: str | None
    source: str | None
    loaded_at: float | None
    compiled: dict[str, Any] | None = None
    training: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> ModelInfo:
        return cls(**{f.name: row.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class ModelsStatus:
    models: list[ModelInfo]
    source: str
    ready: bool
    poll_seconds: float
    last_poll_error: str | None
    classifier: dict[str, Any] | None = None
    encoder: dict[str, Any] | None = None


# --- retries -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Retry:
    """How 429 and 503 answers are retried.

    The n-th retry waits `backoff * 2**n` seconds (plus up to `jitter` of that, so many clients
    refused together do not come back together), or the answer's Retry-After if that is longer.
    A wait longer than `max_wait` is not made: the call raises ServiceBusy at once.
    """

    retries: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.1

    def wait(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds before retry number `retry` (0-based), or None when no retry should be made."""
        if retry >= self.retries:
            return None
        backoff = self.backoff * 2 ** retry
        wait = max(backoff * (1 + random.uniform(0, self.jitter)), retry_after or 0.0)
        return wait if wait <= self.max_wait else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


# --- requests, shared by both clients -------------------------------------------------------------

@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)


def _image_part(value: ImageInput, field_name: str) -> tuple[str, bytes, str]:
    """(filename, bytes, media type) of one uploaded image."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        data = path.read_bytes()
        return path.name or field_name, data, _sniff(data[:16])
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return f"{field_name}{_suffix(data)}", data, _sniff(data[:16])
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8 or value.ndim not in (2, 3):
            raise TypeError(f"{field_name}: an array must be H x W (x 3) uint8, got {value.dtype} {value.shape}")
        value = Image.fromarray(value)
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return f"{field_name}.png", buffer.getvalue(), "image/png"
    raise TypeError(f"{field_name}: expected a path, bytes, a PIL image or a numpy array, got {type(value).__name__}")


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"


def _suffix(data: bytes) -> str:
    return {"image/png": ".png", "image/jpeg": ".jpg"}.get(_sniff(data[:16]), "")


def _texts(**values: Any) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}


def _photo(response: httpx.Response) -> Photo:
    version = response.headers.get("x-s2f-model-version")
    return Photo(data=response.content, media_type=response.headers.get("content-type", "").split(";")[0],
                 category=response.headers.get("x-s2f-category"),
                 model_version=int(version) if version and version.isdigit() else None)


def _products(rows: list[dict[str, Any]]) -> list[Product]:
    return [Product.from_json(row) for row in rows]


def _colorize_and_search(response: httpx.Response) -> ColorizeAndSearchResult:
    body = _json(response)
    photo = Photo(base64.b64decode(body["image"]), body["image_type"], body["category"], body["model_version"])
    return ColorizeAndSearchResult(photo, _products(body["products"]), body.get("catalog_version"))


def _models(response: httpx.Response) -> ModelsStatus:
    body = _json(response)
    return ModelsStatus(models=[ModelInfo.from_json(row) for row in body["models"]], source=body["source"],
                        ready=body["ready"], poll_seconds=body["poll_seconds"],
                        last_poll_error=body.get("last_poll_error"), classifier=body.get("classifier"),
                        encoder=body.get("encoder"))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServerError("the answer is not JSON", response.status_code) from None


def _colorize_call(sketch: ImageInput, category: str, format: str | None = None) -> _Call[Photo]:
    return _Call("POST", "/colorize", _photo, files={"sketch": _image_part(sketch, "sketch")},
                 data=_texts(category=category, format=format))


def _search_call(image: ImageInput, sketch: ImageInput | None = None, text: str | None = None,
                category: str | None = None, top_k: int | None = None) -> _Call[list[Product]]:
    files = {"image": _image_part(image, "image")}
    if sketch is not None:
        files["sketch"] = _image_part(sketch, "sketch")
    return _Call("POST", "/search", lambda r: _products(_json(r)["products"]), files=files,
                 data=_texts(text=text, category=category, top_k=top_k))


def _colorize_and_search_call(sketch: ImageInput, category: str, text: str | None = None, top_k: int | None = None,
                             format: str | None = None) -> _Call[ColorizeAndSearchResult]:
    return _Call("POST", "/colorize_and_search", _colorize_and_search, files={"sketch": _image_part(sketch, "sketch")},
                 data=_texts(category=category, text=text, top_k=top_k, format=format))


def _models_call() -> _Call[ModelsStatus]:
    return _Call("GET", "/models", _models)


def _product_image_call(product_id: str) -> _Call[Photo]:
    return _Call("GET", f"/catalog/images/{quote(product_id, safe='')}", _photo)


def _outcome(response: httpx.Response) -> ApiError | None:
    """None for a 2xx; else the error it means (ServiceBusy for 429/503, to be retried)."""
    status = response.status_code
    if status < 400:
        return None
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = response.reason_phrase or "no error message"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status in RETRY_STATUSES:
        return ServiceBusy(message, status, retry_after)
    if status == 404:
        return NotFound(message, status)
    if status < 500:
        return RequestRejected(message, status)
    return ServerError(message, status)


def _unreachable(exc: httpx.HTTPError, url: str) -> Unreachable:
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else f"failed ({type(exc).__name__})"
    return Unreachable(f"the call to {url} {what}")


# --- the clients ---------------------------------------------------------------------------------

class Client:
    """The API over one httpx connection pool; use as a context manager or call close()."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
                 retry: Retry = Retry(), transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def colorize(self, sketch: ImageInput, category: str, *, format: str | None = None) -> Photo:
        """The generated photo of `sketch`; `category` may be 'auto'; `format` png or jpeg."""
        return self._send(_colorize_call(sketch, category, format))

    def search(self, image: ImageInput, *, sketch: ImageInput | None = None, text: str | None = None,
               category: str | None = None, top_k: int | None = None) -> list[Product]:
        """Products most like `image` (and the drawing and words, when given), best first."""
        return self._send(_search_call(image, sketch, text, category, top_k))

    def colorize_and_search(self, sketch: ImageInput, category: str, *, text: str | None = None,
                            top_k: int | None = None, format: str | None = None) -> ColorizeAndSearchResult:
        return self._send(_colorize_and_search_call(sketch, category, text, top_k, format))

    def models(self) -> ModelsStatus:
        return self._send(_models_call())

    def product_image(self, product_id: str) -> Photo:
        """The cached photo of a product (for cards whose `image_link` is not a web URL)."""
        return self._send(_product_image_call(product_id))

    def _send(self, call: _Call[T]) -> T:
        retry = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, files=call.files or None,
                                              data=call.data or None)
            except httpx.HTTPError as exc:
                raise _unreachable(exc, f"{self.base_url}{call.path}") from exc
            error = _outcome(response)
            if error is None:
                return call.parse(response)
            wait = self.retry.wait(retry, error.retry_after) if isinstance(error, ServiceBusy) else None
            if wait is None:
                raise error
            time.sleep(wait)
            retry += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """`Client`'s methods as coroutines; use as an async context manager or await aclose()."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
                 retry: Retry = Retry(), transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def colorize(self, sketch: ImageInput, category: str, *, format: str | None = None) -> Photo:
        return await self._send(_colorize_call(sketch, category, format))

    async def search(self, image: ImageInput, *, sketch: ImageInput | None = None, text: str | None = None,
                     category: str | None = None, top_k: int | None = None) -> list[Product]:
        return await self._send(_search_call(image, sketch, text, category, top_k))

    async def colorize_and_search(self, sketch: ImageInput, category: str, *, text: str | None = None,
                                  top_k: int | None = None, format: str | None = None) -> ColorizeAndSearchResult:
        return await self._send(_colorize_and_search_call(sketch, category, text, top_k, format))

    async def models(self) -> ModelsStatus:
        return await self._send(_models_call())

    async def product_image(self, product_id: str) -> Photo:
        return await self._send(_product_image_call(product_id))

    async def _send(self, call: _Call[T]) -> T:
        retry = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, files=call.files or None,
                                                    data=call.data or None)
            except httpx.HTTPError as exc:
                raise _unreachable(exc, f"{self.base_url}{call.path}") from exc
            error = _outcome(response)
            if error is None:
                return call.parse(response)
            wait = self.retry.wait(retry, error.retry_after) if isinstance(error, ServiceBusy) else None
            if wait is None:
                raise error
            await asyncio.sleep(wait)
            retry += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
