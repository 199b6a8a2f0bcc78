"""The tuned search weights file: written by the tune_search stage, read by search and the service.

Apart from the tuner (`catalog/weight_tuning.py`) so that reading the file at the service's start
and on its poll imports nothing but YAML.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sketch2fashion.catalog.features import IMAGE_SIGNALS

TUNED_FORMAT = 1


def write_tuned_weights(path: str | Path, weights: Mapping[str, float], evidence: Mapping[str, Any]) -> None:
    """The chosen weights and how they were chosen, as YAML a person can read beside params.yaml."""
    from sketch2fashion.imaging.io import write_bytes_atomic

    body = {"format": TUNED_FORMAT, "weights": {s: round(float(weights[s]), 4) for s in IMAGE_SIGNALS},
            "evidence": dict(evidence)}
    header = "# Written by the tune_search stage (training/tune_search.py); overrides params.yaml search.weights\n"
    write_bytes_atomic(Path(path), (header + yaml.safe_dump(body, sort_keys=False)).encode("utf-8"))


def read_tuned_weights(path: str | Path) -> dict[str, float] | None:
    """The tuned image-signal weights, or None when there is no file yet (params.yaml's apply).
    A file that does not parse is an error naming it: silently searching with other weights
    than the ones reported would be worse."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        weights = {s: float(body["weights"][s]) for s in IMAGE_SIGNALS}
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a tuned weights file ({exc}); rerun `dvc repro tune_search` or delete it") from exc
    return weights
