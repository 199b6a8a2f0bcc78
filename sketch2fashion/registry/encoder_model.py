"""The catalog encoder in the MLflow registry (`catalog-encoder`), like the colorizers.

Logged as a pyfunc model (uint8 RGB images in, unit embeddings out) so any MLflow consumer can
embed images; registered with its val retrieval metrics as tags. Whether a version becomes
`champion` is the champion gate's decision on the test split (registry/gate.py: per-query
reciprocal rank of the candidate and the champion on the same test queries), applied by the
train_embedder stage. The index stage embeds the catalog with the champion (`load_version`) and
records its version; each index version carries the exact encoder weights that built it, so
search never pairs vectors with another encoder.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from sketch2fashion.registry.aliases import CHAMPION, aliased_version, tag_float

ENCODER_MODEL = "catalog-encoder"
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


def register_encoder(model_uri: str, run_id: str, metrics: Mapping[str, float]) -> ModelVersion:
    """Register a logged encoder as a new version of `catalog-encoder`, its val metrics as tags."""
    tags = {k.replace("@", "_at_"): repr(float(v)) for k, v in metrics.items()}
    return mlflow.register_model(model_uri, ENCODER_MODEL, tags={**tags, "run_id": run_id})


def champion(client: MlflowClient) -> ModelVersion | None:
    """The version behind alias `champion`, None before the first promotion."""
    return aliased_version(client, ENCODER_MODEL, CHAMPION)


def load_version(version: ModelVersion) -> Any:
    """A registered version's `ImageEncoder` (eval mode), through its pyfunc model."""
    model = mlflow.pyfunc.load_model(f"models:/{ENCODER_MODEL}/{version.version}")
    return model.unwrap_python_model().encoder


def describe(version: ModelVersion) -> dict[str, Any]:
    """What an index records about the encoder that built it (and /models shows)."""
    return {"model": ENCODER_MODEL, "version": int(version.version),
            "run_id": version.run_id or version.tags.get("run_id"),
            "mrr": tag_float(version, "mrr"), "test_mrr": tag_float(version, "test_reciprocal_rank")}
