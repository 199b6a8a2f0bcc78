"""The Catalog service's side: the published search index, reopened when a new version appears.

The service may start before any index exists (a fresh checkout): searches then answer a clear
"no catalog index" error instead of the service failing to start, and the background thread
opens the index as soon as `dvc repro index` publishes one.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from sketch2fashion.serving import metrics
from sketch2fashion.serving.config import ServingConfig, load_project_params

log = logging.getLogger("sketch2fashion.serving")
NO_INDEX = "the product catalog has no published search index yet; run `dvc repro index`"


class CatalogHolder:
    """A `catalog.search.Catalog` that may not exist yet, refreshed every poll_seconds."""

    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self._catalog: Any = None
        self.error: str | None = NO_INDEX
        self._stop = threading.Event()
        self._open_or_refresh()
        self._thread = threading.Thread(target=self._run, name="s2f-catalog", daemon=True)
        self._thread.start()

    @property
    def version(self) -> str | None:
        return self._catalog.version if self._catalog is not None else None

    def search(self, *, photo: np.ndarray | None, sketch: np.ndarray | None, text: str | None,
               category: str | None, top_k: int) -> list[dict[str, Any]]:
        catalog = self._catalog
        if catalog is None:
            raise LookupError(self.error or NO_INDEX)
        hits = catalog.search(photo=photo, sketch=sketch, text=text, category=category, top_k=top_k)
        return [hit.to_dict() for hit in hits]

    def stop(self) -> None:
        self._stop.set()

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
        except Exception as exc:  # noqa: BLE001 - keep serving what we have (or the clear error)
            if self._catalog is None:
                self.error = f"{NO_INDEX} ({type(exc).__name__}: {exc})"
                metrics.set_catalog_products(0)
            log.warning("catalog index not (re)loaded: %s: %s", type(exc).__name__, exc)
