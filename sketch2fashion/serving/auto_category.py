"""`category=auto`: the one hook where the sketch classifier plugs into the service.

`load_category_classifier` is called once when the API service starts. It returns a function
drawing (RGB uint8) -> category, or None while no classifier is available, in which case
`category=auto` is answered with a 4xx that says how to get one.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from sketch2fashion.serving.config import ServingConfig

log = logging.getLogger("sketch2fashion.serving")
NO_CLASSIFIER = "category=auto needs the sketch classifier; run `dvc repro train_classifier`, or pick a category"
Classify = Callable[[np.ndarray], str]


def load_category_classifier(config: ServingConfig) -> Classify | None:
    """The sketch classifier at `serving.classifier`, or None when it is not there (yet)."""
    path = config.classifier
    if path is None or not path.is_file():
        return None
    try:
        from sketch2fashion.classifier.model import load_classifier, predict_category
    except ImportError as exc:
        log.warning("sketch classifier code not importable (%s); category=auto disabled", exc)
        return None
    classifier = load_classifier(path)
    known = set(config.categories)

    def classify(drawing: np.ndarray) -> str:
        category, _scores = predict_category(classifier, drawing)
        if category not in known:
            raise ValueError(f"classifier answered {category!r}, which is not a served category")
        return category

    log.info("category=auto uses the sketch classifier at %s", path)
    return classify
