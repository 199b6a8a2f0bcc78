"""One adaptive batch of colorize jobs -> one forward pass per category.

BentoML's dispatcher merges concurrent requests into one call of the Colorizer's batchable
API; jobs of several categories may arrive together, and each category has its own model, so
the batch is grouped by category here. Every job gets a result: the photo and the model version
that made it, or an error string (no champion loaded for that category yet, or a failed pass),
so one bad group never fails the others.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from sketch2fashion.serving import metrics
from sketch2fashion.serving.champions import Champion
from sketch2fashion.models.inputs import SKETCH_PLANES
from sketch2fashion.registry.colorizer_model import fit_input
from sketch2fashion.serving.sketches import generator_input, photos_to_uint8

log = logging.getLogger("sketch2fashion.serving")


class Job(Protocol):
    category: str
    sketch: np.ndarray


def colorize_jobs(champions: Mapping[str, Champion], jobs: Sequence[Job], size: int) -> list[dict[str, Any]]:
    """Results in job order: {"category", "version", "image" (S x S x 3 uint8) or "error"}."""
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    groups: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        problem = _shape_problem(job, size)
        if problem:
            results[i] = {"category": job.category, "version": None, "image": None, "error": problem}
        else:
            groups.setdefault(job.category, []).append(i)
    for category, members in groups.items():
        champion = champions.get(category)
        if champion is None:
            for i in members:
                results[i] = {"category": category, "version": None, "image": None,
                              "error": f"no colorizer is loaded for '{category}' yet"}
            continue
        metrics.observe_batch(category, len(members))
        try:
            started = time.perf_counter()
            batch = generator_input([jobs[i].sketch for i in members])
            photos = photos_to_uint8(champion.model.predict(fit_input(champion.model, batch)))
            metrics.observe_forward(category, time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - report per job, keep the other groups
            log.exception("colorizer %s v%s failed on a batch of %d", category, champion.version, len(members))
            for i in members:
                results[i] = {"category": category, "version": champion.version, "image": None,
                              "error": f"colorizer failed: {type(exc).__name__}"}
            continue
        for k, i in enumerate(members):
            results[i] = {"category": category, "version": champion.version, "image": photos[k], "error": None}
    return [r for r in results if r is not None]


def _shape_problem(job: Job, size: int) -> str | None:
    array = np.asarray(job.sketch)
    if array.shape != (SKETCH_PLANES, size, size) or array.dtype != np.uint8:
        return (f"a packed sketch must be uint8 {SKETCH_PLANES}x{size}x{size}, got {array.dtype} "
                f"{'x'.join(map(str, array.shape))}")
    return None
