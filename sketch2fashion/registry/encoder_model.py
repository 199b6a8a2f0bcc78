"""The catalog encoder in the MLflow registry (`catalog-encoder`), like the colorizers.

Logged as a pyfunc model (uint8 RGB images in, unit embeddings out) so any MLflow consumer can
embed images; registered with its val retrieval metrics as tags; the alias `champion` moves to
a new version only when its val MRR is at least the champion's. The search index does not read
the registry: each index version carries the exact encoder weights that built it.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient

from sketch2fashion.registry.aliases import aliased_version, tag_float

ENCODER_MODEL = "catalog-encoder"
CHAMPION = "champion"
WEIGHTS_ARTIFACT = "weights"


class EncoderModel(mlflow.pyfunc.PythonModel):
    """pyfunc: uint8 N x H x W x 3 RGB (sketches or photos) -> float32 N x dim unit embeddings."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from sketch2fashion.catalog.embedder import load_encoder

        self.encoder = load_encoder(context.artifacts[WEIGHTS_ARTIFACT])

    def predict(self, context: Any, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        from sketch2fashion.catalog.embedder import embed_images

        images = np.asarray(model_input)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"encoder expects uint8 N x H x W x 3 images, got {images.dtype} {images.shape}")
        return embed_images(self.encoder, list(images))


def log_encoder(weights: str | Path, *, artifact_path: str = "encoder") -> str:
    """Log the encoder into the active run; returns the logged model's URI."""
    import torch

    info = mlflow.pyfunc.log_model(
        name=artifact_path, python_model=EncoderModel(), artifacts={WEIGHTS_ARTIFACT: str(weights)},
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"],
    )
    return info.model_uri


def register_encoder(model_uri: str, run_id: str, metrics: Mapping[str, float], *,
                     score: str = "mrr") -> dict[str, Any]:
    """Register a new version; make it champion when its `score` >= the champion's (or none yet)."""
    client = MlflowClient()
    tags = {k.replace("@", "_at_"): repr(float(v)) for k, v in metrics.items()}
    version = mlflow.register_model(model_uri, ENCODER_MODEL, tags={**tags, "run_id": run_id})
    current = aliased_version(client, ENCODER_MODEL, CHAMPION)
    new_score = float(metrics[score])
    old_score = tag_float(current, score)
    promoted = current is None or old_score is None or new_score >= old_score
    if promoted:
        client.set_registered_model_alias(ENCODER_MODEL, CHAMPION, version.version)
    return {"version": int(version.version), "champion": promoted,
            "previous_champion": None if current is None else int(current.version),
            "reason": f"{score} {new_score:.4f} vs champion {old_score if old_score is not None else 'none'}"}
