"""`category=auto`: the `sketch-classifier` champion names the garment, followed like the colorizers.

`load_category_classifier` is called once when the API service starts and returns a
`CategoryClassifier`: drawing (RGB uint8) -> category. Its classifier is the registry's
`sketch-classifier` champion (in a built Bento without a registry: the one `s2f bento import`
bundled). A background thread asks the registry every `poll_seconds` which version holds the
alias; a new version is loaded and must name a served category for a fixed probe drawing, and
know no category the service does not serve, before it replaces the old one in one reference. A
version that fails either way is refused: logged, counted in
`s2f_model_swaps_total{category="auto", outcome="refused"}`, not retried until the alias moves
again, and the old classifier keeps answering. Until one is loaded, `category=auto` is a 422 that
says how to get one.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sketch2fashion.serving import metrics
from sketch2fashion.serving.config import AUTO_CATEGORY, ServingConfig

log = logging.getLogger("sketch2fashion.serving")
NO_CLASSIFIER = "category=auto needs the sketch classifier; run `dvc repro train_classifier`, or pick a category"
MODEL = "sketch-classifier"
Classify = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class LoadedClassifier:
    """A classifier that passed the probe, and what the registry says about it."""

    version: int | None
    run_id: str | None
    accuracy: float | None
    test_accuracy: float | None
    source: str
    classifier: Any = field(repr=False)
    loaded_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        return {"model": MODEL, "version": self.version, "run_id": self.run_id, "accuracy": self.accuracy,
                "test_accuracy": self.test_accuracy, "categories": list(self.classifier.categories),
                "source": self.source, "loaded_at": round(self.loaded_at, 3)}


class CategoryClassifier:
    """The classifier behind `category=auto`, kept in step with the registry by a background thread."""

    def __init__(self, config: ServingConfig, *, source: str | None = None) -> None:
        from sketch2fashion.serving.champions import resolve_source  # imports torch: not at module load

        self.config = config
        self.source = source or resolve_source(config)
        self._current: LoadedClassifier | None = None
        self._refused: int | None | bool = False  # the version last refused (False: none)
        self._client: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    # -- answering ----------------------------------------------------------------------------
    def __call__(self, drawing: np.ndarray) -> str:
        from sketch2fashion.classifier.model import predict_category
        from sketch2fashion.serving.requests import BadRequest

        current = self._current
        if current is None:
            raise BadRequest(NO_CLASSIFIER, 422)
        category, _scores = predict_category(current.classifier, drawing)
        if category not in self.config.categories:  # the probe keeps such classifiers out
            raise ValueError(f"classifier answered {category!r}, which is not a served category")
        return category

    def describe(self) -> dict[str, Any]:
        """What /models shows: the loaded version, or why there is none."""
        current = self._current
        if current is not None:
            return current.describe()
        return {"model": MODEL, "version": None, "source": self.source, "error": self.last_error or NO_CLASSIFIER}

    # -- following the registry ---------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="s2f-classifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        from sketch2fashion.serving.champions import BUNDLED

        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # noqa: BLE001 - a registry hiccup must not kill the poller
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("classifier poll failed (serving classifier unchanged): %s", self.last_error)
            if self.source == BUNDLED and self._current is not None:
                return  # a Bento's models never change
            self._stop.wait(self.config.poll_seconds)

    def sync(self) -> bool:
        """One poll: load and install the champion if it is not the one answering; True when it changed."""
        from sketch2fashion.serving.champions import REGISTRY

        found = self._registry_champion() if self.source == REGISTRY else self._bundled()
        if found is None:
            return False  # nothing promoted (or bundled) yet: keep what answers
        version, info, load = found
        current = self._current
        if current is not None and current.version == version and current.run_id == info["run_id"]:
            return False
        if self._refused is not False and self._refused == version:
            return False
        try:
            candidate = self._probe(load(), version, info)
        except Exception as exc:  # noqa: BLE001 - refuse whatever went wrong, keep answering
            self._refused = version
            self.last_error = f"version {version} refused: {exc}"
            metrics.count_swap(AUTO_CATEGORY, "refused")
            log.error("refused %s version %s (still serving %s): %s", MODEL, version,
                      current.version if current else "nothing", exc)
            return False
        self._refused = False
        self._current = candidate
        self.last_error = None
        metrics.set_served_model(MODEL, version, current.version if current else None)
        metrics.count_swap(AUTO_CATEGORY, "loaded")
        log.info("category=auto now answered by %s version %s (was %s)", MODEL, version,
                 current.version if current else "none")
        return True

    def _probe(self, classifier: Any, version: int | None, info: dict[str, Any]) -> LoadedClassifier:
        from sketch2fashion.classifier.model import predict_category
        from sketch2fashion.serving.champions import ModelRefused
        from sketch2fashion.serving.sketches import probe_sketch

        foreign = sorted(set(classifier.categories) - set(self.config.categories))
        if foreign:
            raise ModelRefused(f"it names categories the service does not serve: {foreign}")
        category, scores = predict_category(classifier, probe_sketch(self.config.image_size).drawing)
        if category not in self.config.categories or not np.isfinite(list(scores.values())).all():
            raise ModelRefused(f"the probe drawing gave {category!r} with scores {scores}")
        return LoadedClassifier(version=version, source=self.source, classifier=classifier, **info)

    def _registry_champion(self) -> tuple[int, dict[str, Any], Callable[[], Any]] | None:
        from sketch2fashion.classifier import registry
        from sketch2fashion.registry.aliases import tag_float

        if self._client is None:
            from sketch2fashion.registry.tracking import configure

            self._client = configure(self.config.project_root)
        current = registry.champion(self._client)
        if current is None:
            return None
        info = {"run_id": current.run_id, "accuracy": tag_float(current, "accuracy"),
                "test_accuracy": tag_float(current, "test_accuracy")}
        return int(current.version), info, lambda: registry.load_version(self._client, current)

    def _bundled(self) -> tuple[int | None, dict[str, Any], Callable[[], Any]] | None:
        from sketch2fashion.serving.bento_models import load_stored_classifier, stored_classifier

        stored = stored_classifier()
        if stored is None:
            if self.last_error is None:
                self.last_error = "no bundled sketch classifier: build the Bento with `s2f bento build`"
                log.error(self.last_error)
            return None
        meta = dict(stored.info.metadata or {})
        info = {"run_id": meta.get("run_id"), "accuracy": meta.get("accuracy"),
                "test_accuracy": meta.get("test_accuracy")}
        return meta.get("registry_version"), info, lambda: load_stored_classifier(stored)


def load_category_classifier(config: ServingConfig) -> CategoryClassifier:
    """The classifier behind `category=auto`, following its champion from now on (API service start)."""
    follower = CategoryClassifier(config)
    follower.start()
    return follower
