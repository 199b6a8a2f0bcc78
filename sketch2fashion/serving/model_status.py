"""What /models says about the served models besides the colorizers (those the Colorizer reports).

- `classifier`: the `sketch-classifier` version behind `category=auto` (serving/auto_category.py);
- `encoder`: the `catalog-encoder` version that embedded the published catalog index, as the index
  version records it (training/index_catalog.py); read from the index folder, which the Catalog
  service reopens within `poll_seconds` of a new version.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from sketch2fashion.serving.config import ServingConfig, load_project_params

log = logging.getLogger("sketch2fashion.serving")
ENCODER = "catalog-encoder"


def other_models(config: ServingConfig, classify: Any) -> dict[str, Any]:
    """{"classifier": ..., "encoder": ...} for the /models answer."""
    describe = getattr(classify, "describe", None)
    return {"classifier": describe() if describe is not None else None, "encoder": index_encoder(config)}


def index_encoder(config: ServingConfig) -> dict[str, Any]:
    """The encoder version recorded by the published index version (its `version` None when the
    index was built from a plain weights file, or there is no index yet)."""
    from sketch2fashion.catalog.index import VERSIONS_DIR, read_pointer
    from sketch2fashion.catalog.search import ENCODER_INFO_FILE, SearchSettings

    try:
        index_dir = SearchSettings.from_params(load_project_params(config), config.project_root).index_dir
        name = read_pointer(index_dir)
        if name is None:
            return {"model": ENCODER, "version": None, "index_version": None}
        recorded = index_dir / VERSIONS_DIR / name / ENCODER_INFO_FILE
        info = json.loads(recorded.read_text()) if recorded.is_file() else {"model": ENCODER, "version": None}
        return {**info, "index_version": name}
    except Exception as exc:  # noqa: BLE001 - /models must answer even when the index folder is odd
        log.warning("could not read the catalog index's encoder: %s: %s", type(exc).__name__, exc)
        return {"model": ENCODER, "version": None, "index_version": None}
