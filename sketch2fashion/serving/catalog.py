"""The Catalog service's side: the published search index, reopened when a new version appears.

The service may start before any index exists (a fresh checkout): searches then answer a clear
"no catalog index" error instead of the service failing to start, and the background thread
opens the index as soon as `dvc repro index` publishes one.
"""
from __future__ import annotations

import logging
import mimetypes
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from sketch2fashion.catalog.feed import is_http_url
from sketch2fashion.imaging.hints import Hints
from sketch2fashion.serving import metrics
from sketch2fashion.serving.config import ServingConfig, load_project_params

log = logging.getLogger("sketch2fashion.serving")
NO_INDEX = "the product catalog has no published search index yet; run `dvc repro index`"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})


def hints_of_pixels(pixels: np.ndarray | None) -> Hints | None:
    """Hinted pixels' colours (uint8 N x 3) -> Hints of one N x 1 strip, all of it hinted; None
    stays None. Anything else is refused (ValueError): they come from the API, never a client."""
    if pixels is None:
        return None
    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"hint pixels must be uint8 N x 3, got {array.dtype} {array.shape}")
    return Hints(np.ascontiguousarray(array[:, None, :]), np.ones((len(array), 1), np.uint8))


class NoSuchImage(LookupError):
    """No product with this id in the served index, or its card names no readable photo (404)."""


class CatalogHolder:
    """A `catalog.search.Catalog` that may not exist yet, refreshed every poll_seconds."""

    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self._catalog: Any = None
        self._encoder_version: int | None = None
        self.error: str | None = NO_INDEX
        self._stop = threading.Event()
        self._open_or_refresh()
        self._thread = threading.Thread(target=self._run, name="s2f-catalog", daemon=True)
        self._thread.start()

    def search(self, *, photo: np.ndarray | None, sketch: np.ndarray | None, text: str | None,
               category: str | None, top_k: int, hint_pixels: np.ndarray | None = None,
               photo_is_upload: bool = False) -> tuple[str, list[dict[str, Any]]]:
        """(the index version that answered, its product cards): one version, also mid-refresh.

        `hint_pixels`: the colours of the sketch's hinted pixels as the API split them for the
        colorizer (uint8 N x 3), used instead of splitting the drawing again."""
        catalog = self._catalog
        if catalog is None:
            raise LookupError(self.error or NO_INDEX)
        version, hits = catalog.search_versioned(photo=photo, sketch=sketch, hints=hints_of_pixels(hint_pixels),
                                                 photo_is_upload=photo_is_upload, text=text, category=category,
                                                 top_k=top_k)
        return version, [public_card(hit.to_dict()) for hit in hits]

    def image(self, product_id: str) -> tuple[bytes, str]:
        """The cached photo the product's card names (`image_path`), and its media type.

        Only a path written in a card of the served index is ever read, so the id cannot pick
        an arbitrary file: an unknown id (`../x` included) is `NoSuchImage`, like a card whose
        photo is gone or is not an image. A relative `image_path` is taken from the project root.
        """
        catalog = self._catalog
        if catalog is None:
            raise LookupError(self.error or NO_INDEX)
        card = catalog.card(product_id)
        if card is None:
            raise NoSuchImage(f"no product {product_id!r} in the catalog")
        named = str(card.get("image_path") or "")
        path = Path(named)
        if named and not path.is_absolute():
            path = self.config.project_root / path
        media_type = mimetypes.guess_type(path.name)[0]
        if not named or media_type not in IMAGE_TYPES or not path.is_file():
            raise NoSuchImage(f"product {product_id!r} has no cached photo")
        return path.read_bytes(), media_type

    def stop(self) -> None:
        self._stop.set()

    def _note_encoder(self) -> None:
        """s2f_served_model_info of the encoder that made the served vectors (when the index says)."""
        info = self._catalog.encoder_info or {}
        version = info.get("version")
        if version is not None and version != self._encoder_version:
            metrics.set_served_model(info.get("model", "catalog-encoder"), int(version), self._encoder_version)
            self._encoder_version = int(version)

    def _run(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            self._open_or_refresh()

    def _open_or_refresh(self) -> None:
        try:
            if self._catalog is None:
                from sketch2fashion.catalog.search import Catalog

                self._catalog = Catalog.open(load_project_params(self.config),
                                             project_root=self.config.project_root)
                self.error = None
                log.info("catalog index %s opened", self._catalog.version)
            else:
                before = self._catalog.version
                self._catalog.refresh()
                if self._catalog.version != before:
                    log.info("catalog index %s replaces %s", self._catalog.version, before)
            metrics.set_catalog_products(len(self._catalog))
            self._note_encoder()
        except Exception as exc:  # noqa: BLE001 - keep serving what we have (or the clear error)
            if self._catalog is None:
                self.error = NO_INDEX  # clients see it: the why (paths included) goes to the log only
                metrics.set_catalog_products(0)
            log.warning("catalog index not (re)loaded: %s: %s", type(exc).__name__, exc)


def public_card(card: dict[str, Any]) -> dict[str, Any]:
    """A product card as the public API shows it: an `image_link` that is not a web URL (a feed's
    local path, a generated card's file:// URL naming where the server keeps its photos) becomes the
    route that serves the cached copy, so no answer names a path on the server."""
    if is_http_url(card["image_link"]):
        return card
    return {**card, "image_link": f"/catalog/images/{quote(card['id'], safe='')}"}
