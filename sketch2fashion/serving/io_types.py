"""What the API service sends to the Colorizer and Catalog services and gets back.

BentoML IODescriptors (pydantic models whose numpy fields BentoML knows how to validate and,
between services, pickle). Failures travel as an `error` string rather than an exception, so
the API can tell "no model for this category yet" (503) from its own bugs (500).
"""
from __future__ import annotations

from typing import Annotated, Any, Optional

import bentoml
import numpy as np
from bentoml.validators import DType

Uint8Array = Annotated[np.ndarray, DType("uint8")]


class ColorizeJob(bentoml.IODescriptor):
    """One prepared sketch at the model's size, packed (uint8 9 x S x S, see serving.sketches)."""

    category: str
    sketch: Uint8Array


class ColorizeResult(bentoml.IODescriptor):
    category: str
    version: Optional[int] = None
    image: Optional[Uint8Array] = None
    error: Optional[str] = None


class CatalogQuery(bentoml.IODescriptor):
    photo: Optional[Uint8Array] = None
    sketch: Optional[Uint8Array] = None
    hint_pixels: Optional[Uint8Array] = None
    """The colours of the sketch's hinted pixels as the API split them for the colorizer (uint8
    N x 3 RGB, N = 0 when nothing is hinted), so the Catalog need not split the drawing again: the
    hint histogram needs nothing else, and a few dots are a few KB where the planes were 256 KB."""
    photo_is_upload: bool = False
    """The photo is the shopper's own (POST /search), to be isolated onto white like the catalog's
    photos; a generated photo (POST /colorize_and_search) is on white already, and checking costs."""
    text: Optional[str] = None
    category: Optional[str] = None
    top_k: int = 10


class CatalogAnswer(bentoml.IODescriptor):
    products: list[dict[str, Any]] = []
    version: Optional[str] = None
    error: Optional[str] = None


class CatalogImage(bentoml.IODescriptor):
    """A product's cached photo: the file bytes, or why not (`status` 404: no such product or
    photo; 503: no catalog index yet)."""

    data: Optional[Uint8Array] = None
    content_type: str = ""
    status: int = 200
    error: Optional[str] = None
