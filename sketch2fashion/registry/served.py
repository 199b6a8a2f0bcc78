"""Every registered model the product serves and its champion: what `s2f models` lists.

- `colorizer-<category>` (one per category), served by the Colorizer;
- `sketch-classifier`, behind `category=auto`;
- `catalog-encoder`, which the index stage embeds the catalog with.

Each row names the gate's metric with the champion's val score (measured when it was trained)
and its test score (measured again by the last gate that compared it, on the test split).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlflow.tracking import MlflowClient

from sketch2fashion.registry.aliases import CHAMPION, aliased_version, tag_float
from sketch2fashion.registry.promotion import list_champions, registered_model_name

CLASSIFIER_MODEL = "sketch-classifier"  # classifier/registry.py MODEL_NAME (that module needs torch)
ENCODER_MODEL = "catalog-encoder"  # registry/encoder_model.py ENCODER_MODEL


def served_models(client: MlflowClient, categories: Iterable[str]) -> list[dict[str, Any]]:
    """One row per served model: kind, model, category, version, metric, val, test, run_id (+ the
    colorizers' epoch and ssim); version None where nothing was promoted yet."""
    rows = [{"kind": "colorizer", "model": registered_model_name(row["category"]), **row, "metric": "ssim",
             "val": row["ssim"], "test": row["test_ssim"]}
            for row in list_champions(client, categories)]
    for kind, name, metric, val_tag, test_tag in (
            ("classifier", CLASSIFIER_MODEL, "accuracy", "accuracy", "test_accuracy"),
            ("encoder", ENCODER_MODEL, "mrr", "mrr", "test_reciprocal_rank")):
        current = aliased_version(client, name, CHAMPION)
        rows.append({"kind": kind, "model": name, "category": None,
                     "version": None if current is None else int(current.version), "metric": metric,
                     "val": tag_float(current, val_tag), "test": tag_float(current, test_tag),
                     "run_id": None if current is None else (current.run_id or current.tags.get("run_id"))})
    return rows
