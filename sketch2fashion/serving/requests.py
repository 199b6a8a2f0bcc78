"""Reading and checking the public endpoints' multipart forms: every bad input becomes a `BadRequest`.

The public endpoints parse their forms here rather than through BentoML's `@bentoml.api`
argument parsing, because that path (BentoML 1.4) answers some bad inputs with a 500: a form
field over Starlette's 1 MB part limit, or a file field sent as plain text (it is then fetched
as a URL). Here the body is read under a byte limit first, then parsed, then each field is
checked; `BadRequest` carries the status and the one-line message the client sees as
`{"error": "..."}`.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from sketch2fashion.imaging.io import UPLOAD_FORMAT_NAMES, ImageRejected, decode_upload
from sketch2fashion.serving.config import AUTO_CATEGORY, Limits

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
DRAIN_FACTOR = 4
"""An oversize body is read (and dropped) up to this many times the limit before answering, so
the client, still uploading, reads our 413 instead of a reset connection."""


class BadRequest(Exception):
    """A request the service refuses; `status` is a 4xx and `message` says what to change."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Form:
    """A parsed form: uploaded files (bytes) and text fields, each at most once."""

    files: Mapping[str, bytes]
    texts: Mapping[str, str]

    def text(self, name: str) -> str | None:
        return self.texts.get(name)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, or BadRequest 413 when it is (or announces itself) larger than max_bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_len = int(declared)
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
        if declared_len > max_bytes:
            await _drain(request.stream(), max_bytes * DRAIN_FACTOR)
            raise BadRequest(_too_big(declared_len, max_bytes), 413)
    chunks: list[bytes] = []
    total = 0
    stream = request.stream()
    async for chunk in stream:
        total += len(chunk)
        if total > max_bytes:
            await _drain(stream, max_bytes * DRAIN_FACTOR - total)
            raise BadRequest(_too_big(total, max_bytes, at_least=True), 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, *, files: Iterable[str], texts: Iterable[str],
                    limits: Limits) -> Form:
    """Parse a multipart (or urlencoded) form whose fields must all be among `files` and `texts`."""
    files, texts = set(files), set(texts)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in FORM_TYPES:
        raise BadRequest(f"send a multipart/form-data form (fields: {_listing(files | texts)}), "
                         f"not {media_type or 'a body without Content-Type'}", 415)
    body = await read_body(request, limits.max_body_bytes)

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    parsed = Request(request.scope, replay)
    try:
        # Part sizes are already bounded by the body limit; text length is checked per field.
        form = await parsed.form(max_files=len(files) + 1, max_fields=len(files | texts) + 1,
                                 max_part_size=limits.max_body_bytes)
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", None) or str(exc)
        raise BadRequest(f"malformed form: {detail}") from exc
    try:
        return await _collect(form, files, texts)
    finally:
        await form.close()


async def _collect(form, files: set[str], texts: set[str]) -> Form:
    unknown = sorted(set(form.keys()) - files - texts)
    if unknown:
        raise BadRequest(f"unknown form field(s) {_listing(unknown)}; this endpoint takes {_listing(files | texts)}")
    got_files: dict[str, bytes] = {}
    got_texts: dict[str, str] = {}
    for name in form.keys():
        values = form.getlist(name)
        if len(values) != 1:
            raise BadRequest(f"send the field '{name}' once, not {len(values)} times")
        value = values[0]
        if name in files:
            if not isinstance(value, UploadFile):
                raise BadRequest(f"'{name}' must be an uploaded file (a multipart part with a filename), "
                                 "not a text field")
            got_files[name] = await value.read()
        else:
            if isinstance(value, UploadFile):
                raw = await value.read()
                try:
                    value = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise BadRequest(f"'{name}' must be UTF-8 text") from None
            got_texts[name] = value
    return Form(got_files, got_texts)


def require_file(form: Form, name: str, what: str) -> bytes:
    data = form.files.get(name)
    if data is None:
        raise BadRequest(f"'{name}' is required: upload {what}")
    return data


def decode_image(data: bytes, field: str, limits: Limits) -> np.ndarray:
    """Upload bytes -> RGB uint8 (longer side at most limits.max_side), or BadRequest saying why not.

    Only PNG, JPEG and WebP are accepted. Sizes are checked from the image header before any pixel
    is decoded, and the decode stays within a memory budget tied to max_side (imaging.io), so a
    decompression bomb is refused at the cost of reading its header.
    """
    try:
        return decode_upload(data, max_side=limits.max_side, max_pixels=limits.max_pixels,
                             min_side=limits.min_side)
    except ImageRejected as exc:
        status = 413 if exc.reason == "too large" else 400
        hint = f" (send {UPLOAD_FORMAT_NAMES})" if exc.reason in ("empty file", "not an image",
                                                                 "unsupported format") else ""
        raise BadRequest(f"'{field}': {exc}{hint}", status) from None


def parse_category(value: str | None, categories: Iterable[str], *, allow_auto: bool,
                   required: bool) -> str | None:
    """A configured category (or 'auto' where allowed); None when absent and optional."""
    cats = list(categories)
    choices = cats + ([AUTO_CATEGORY] if allow_auto else [])
    text = (value or "").strip().lower()
    if not text:
        if required:
            raise BadRequest(f"'category' is required: one of {_listing(choices)}")
        return None
    if text not in choices:
        raise BadRequest(f"unknown category {_quote(text)}; expected one of {_listing(choices)}")
    return text


def parse_top_k(value: str | None, limits: Limits) -> int:
    if value is None or not value.strip():
        return limits.default_top_k
    try:
        top_k = int(value.strip())
    except ValueError:
        raise BadRequest(f"top_k must be a whole number from 1 to {limits.max_top_k}, got {_quote(value)}") from None
    if not 1 <= top_k <= limits.max_top_k:
        raise BadRequest(f"top_k must be between 1 and {limits.max_top_k}, got {top_k}")
    return top_k


def parse_photo_format(value: str | None, default: str, choices: Iterable[str]) -> str:
    """The `format` field: how the generated photo is sent back (default: serving.photo_format)."""
    if value is None or not value.strip():
        return default
    text = value.strip().lower()
    text = "jpeg" if text == "jpg" else text
    if text not in set(choices):
        raise BadRequest(f"unknown format {_quote(value)}; expected one of {_listing(choices)}")
    return text


def parse_text(value: str | None, limits: Limits) -> str | None:
    if value is None:
        return None
    if len(value) > limits.max_text_chars:
        raise BadRequest(f"text is {len(value)} characters long; at most {limits.max_text_chars} are allowed")
    text = " ".join(value.split())
    return text or None


def _too_big(size: int, limit: int, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"request body is {more}{size} bytes; the limit is {limit} bytes"


async def _drain(stream: AsyncIterator[bytes], budget: int) -> None:
    """Read and drop up to `budget` more body bytes (see DRAIN_FACTOR)."""
    if budget <= 0:
        return
    async for chunk in stream:
        budget -= len(chunk)
        if budget <= 0:
            return


def _listing(names: Iterable[str]) -> str:
    """Sets are sorted; lists keep their order (categories as configured)."""
    return ", ".join(names if isinstance(names, list) else sorted(names))


def _quote(value: str, limit: int = 40) -> str:
    shown = value if len(value) <= limit else value[:limit] + "..."
    return repr(shown)
