"""Sketch2Fashion's BentoML services: `bentoml serve` (bentofile.yaml: service:API) starts all three.

- Colorizer (GPU when there is one, else CPU in bf16 where the CPU has it natively): every
  category's champion colorizer; one batchable API that BentoML's adaptive batching feeds and
  that runs one forward pass per category in the batch. Follows the MLflow registry. With
  `serving.colorizer: inline` it is not started: the API process holds the champions itself
  and batches with BentoML's adaptive batching dispatcher there (serving/colorizers.py).
- API: the public endpoints (serving/web.py, a FastAPI app mounted for its OpenAPI schema),
  composed with `bentoml.depends`.
- Catalog (CPU): product search over the published catalog index, and the products' cached photos.

Settings come from params.yaml `serving:` of the project at `S2F_PROJECT_ROOT` (default: the
working folder), read once when this file is imported; see sketch2fashion/serving/config.py.
"""
from __future__ import annotations

from typing import Annotated

import bentoml
from bentoml.validators import ContentType

from sketch2fashion.serving.config import apply_omp_wait_policy, load_serving_config
from sketch2fashion.serving.io_types import (
    CatalogAnswer, CatalogImage, CatalogQuery, ColorizeJob, ColorizeResult,
)
from sketch2fashion.serving.traffic import ConcurrencyLimit
from sketch2fashion.serving.web import make_app

CONFIG = load_serving_config()
INLINE = CONFIG.colorizer == "inline"
apply_omp_wait_policy(CONFIG)  # before torch loads in this worker (libgomp reads it once)
TRAFFIC = {"timeout": CONFIG.timeout, "max_concurrency": CONFIG.max_concurrency}
# The API applies the same limit itself, so that its 429 answers carry Retry-After (serving/traffic.py).
API_TRAFFIC = {"timeout": CONFIG.timeout}
# How long the API keeps its client session to the Colorizer / Catalog (BentoML's default, 100
# requests or 300 s, closes the session with every call on it still in flight: measured 16% of
# /colorize calls failing at 32 concurrent clients; serving.traffic.session_max_*).
CONNECTION = {"max_requests": CONFIG.session_max_requests, "max_age": CONFIG.session_max_age}
# The Colorizer and the Catalog are only called by the API, whose access log has every public
# request: theirs would log each of those again, costing CPU on every call (bench/NOTES.md item 18).
INTERNAL_LOGGING = {"access": {"enabled": False}}
# Declared, not inferred: BentoML 1.4 otherwise rebuilds the JSON schema of a list output on
# every response to find its media type (0.66 ms of the Colorizer's CPU per request, measured).
JSON = ContentType("application/json")
# `serving.batching.max_batch_size: 1` turns adaptive batching off (BentoML refuses a batchable API
# with max_batch_size 1): the API then runs one request at a time, as it arrives.
BATCHING = ({"batchable": True, "max_batch_size": CONFIG.max_batch_size, "max_latency_ms": CONFIG.max_latency_ms}
            if CONFIG.max_batch_size > 1 else {})


@bentoml.service(resources={"gpu": 1}, traffic=TRAFFIC, runner_connection=CONNECTION, workers=1,
                 logging=INTERNAL_LOGGING)
class Colorizer:
    """Holds one champion per category; swaps in new ones as the registry promotes them."""

    def __init__(self) -> None:
        from sketch2fashion.serving.colorizers import ColorizerHost

        self.host = ColorizerHost(CONFIG)

    def __is_ready__(self) -> bool:
        return self.host.ready()

    @bentoml.api(**BATCHING)
    def colorize(self, jobs: list[ColorizeJob]) -> Annotated[list[ColorizeResult], JSON]:
        return self.host.colorize(jobs)

    @bentoml.api
    def status(self) -> dict:
        return self.host.status()

    @bentoml.on_shutdown
    def stop(self) -> None:
        self.host.stop()


@bentoml.service(traffic=TRAFFIC, runner_connection=CONNECTION, workers=1, logging=INTERNAL_LOGGING)
class Catalog:
    """Product search; picks up newly published index versions by itself."""

    def __init__(self) -> None:
        import torch

        from sketch2fashion.serving.catalog import CatalogHolder

        torch.set_num_threads(1)
        self.holder = CatalogHolder(CONFIG)

    @bentoml.api
    def search(self, query: CatalogQuery) -> CatalogAnswer:
        try:
            version, products = self.holder.search(photo=query.photo, sketch=query.sketch, text=query.text,
                                                   category=query.category, top_k=query.top_k,
                                                   hint_pixels=query.hint_pixels, photo_is_upload=query.photo_is_upload)
        except LookupError as exc:
            return CatalogAnswer(error=str(exc))
        return CatalogAnswer(products=products, version=version)

    @bentoml.api
    def product_image(self, product_id: str) -> CatalogImage:
        """The cached photo a product card names (for the page: demo feeds link local files)."""
        import numpy as np

        from sketch2fashion.serving.catalog import NoSuchImage

        try:
            data, media_type = self.holder.image(product_id)
        except NoSuchImage as exc:
            return CatalogImage(status=404, error=str(exc))
        except LookupError as exc:
            return CatalogImage(status=503, error=str(exc))
        return CatalogImage(data=np.frombuffer(data, np.uint8), content_type=media_type)

    @bentoml.on_shutdown
    def stop(self) -> None:
        self.holder.stop()


@bentoml.service(resources={"gpu": 1} if INLINE else {}, traffic=API_TRAFFIC, workers=1)
@bentoml.asgi_app(make_app(CONFIG), path="/")
class API:
    """The public endpoints: /colorize, /search, /colorize_and_search, /models,
    /catalog/images/{id}, their OpenAPI schema (/openapi.json, /docs) and the drawing page at /."""

    catalog = bentoml.depends(Catalog)
    if not INLINE:
        colorizer_service = bentoml.depends(Colorizer)

    def __init__(self) -> None:
        from sketch2fashion.serving.auto_category import load_category_classifier
        from sketch2fashion.serving.colorizers import ColorizerHost, InlineColorizer, RemoteColorizer
        from sketch2fashion.serving.endpoints import Endpoints

        self.colorizer = (InlineColorizer(ColorizerHost(CONFIG), CONFIG) if INLINE
                          else RemoteColorizer(self.colorizer_service))
        self.endpoints = Endpoints(CONFIG, self.colorizer, self.catalog, load_category_classifier(CONFIG))

    async def __is_ready__(self) -> bool:
        """Ready when every category has a champion; otherwise /readyz's 503 names the ones missing."""
        from starlette.exceptions import HTTPException

        try:
            status = await self.colorizer.status()
        except Exception:  # noqa: BLE001 - the Colorizer is not answering: BentoML's own 503
            return False
        if status.get("ready"):
            return True
        missing = [row["category"] for row in status.get("models", []) if row.get("version") is None]
        raise HTTPException(503, f"no colorizer champion is loaded yet for: {', '.join(missing)} (see /models)")

    @bentoml.on_shutdown
    def stop(self) -> None:
        self.colorizer.stop()


API.add_asgi_middleware(ConcurrencyLimit, max_concurrency=CONFIG.max_concurrency, retry_after=CONFIG.retry_after)


def _declare_bundled_models() -> None:
    """Declare the champions `s2f bento import` stored, so `bentoml build` packs them."""
    from sketch2fashion.serving.bento_models import bundled_refs

    (API if INLINE else Colorizer).models.extend(bundled_refs(CONFIG.categories))


_declare_bundled_models()
