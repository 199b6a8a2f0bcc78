"""The sketch classifier in the MLflow registry: model `sketch-classifier`, alias `champion` serves.

The registered model is the plain `save_classifier` file, not a pyfunc: its only consumer is our
serving code, which wants the `SketchClassifier` itself (`predict_category`). MLflow 3's
`register_model` accepts only logged models, so the version is created from the run's artifact
folder with `create_model_version`. A retrain becomes champion when its val accuracy is at least
the champion's: on a tie the newer model (newer data and code) wins.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

from sketch2fashion.classifier.model import SketchClassifier, load_classifier
from sketch2fashion.registry.aliases import aliased_version, tag_float

MODEL_NAME = "sketch-classifier"
ARTIFACT_PATH = "classifier"
FILE_NAME = "classifier.pt"
CHAMPION = "champion"


@dataclass(frozen=True)
class Promotion:
    """Whether `version` is the champion after the call, and why (also tagged on the version)."""

    promoted: bool
    reason: str
    version: int
    accuracy: float
    champion_version: int | None
    champion_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_and_register(classifier_file: str | Path, accuracy: float, client: MlflowClient,
                     tags: Mapping[str, Any] | None = None) -> ModelVersion:
    """Log the file into the active run as `classifier/classifier.pt`; register it as a new version.

    The version carries `accuracy` (val accuracy, what the champion gate compares) and `tags`.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_and_register needs an active MLflow run: call it inside mlflow.start_run()")
    with tempfile.TemporaryDirectory(prefix="s2f-classifier-") as tmp:
        staged = shutil.copyfile(classifier_file, Path(tmp) / FILE_NAME)
        mlflow.log_artifact(str(staged), artifact_path=ARTIFACT_PATH)
    try:
        client.create_registered_model(MODEL_NAME)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    version_tags = {**{k: str(v) for k, v in (tags or {}).items()}, "accuracy": repr(float(accuracy))}
    return client.create_model_version(MODEL_NAME, source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
                                       run_id=run.info.run_id, tags=version_tags)


def champion(client: MlflowClient) -> ModelVersion | None:
    """The version behind alias `champion`, None before the first promotion."""
    return aliased_version(client, MODEL_NAME, CHAMPION)


def promote_if_not_worse(client: MlflowClient, version: int | str) -> Promotion:
    """Make `version` champion when there is none or its accuracy >= the champion's."""
    candidate = client.get_model_version(MODEL_NAME, str(version))
    accuracy = float(candidate.tags["accuracy"])
    current = champion(client)
    old = tag_float(current, "accuracy")
    if current is None:
        promoted, reason = True, "no champion yet"
    elif int(current.version) == int(candidate.version):
        promoted, reason = True, "already the champion"
    elif old is None:
        promoted, reason = True, f"champion v{current.version} has no accuracy tag"
    else:
        promoted = accuracy >= old
        reason = (f"val accuracy {accuracy:.4f} {'>=' if promoted else '<'} "
                  f"champion v{current.version}'s {old:.4f}")
    if promoted:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, candidate.version)
    client.set_model_version_tag(MODEL_NAME, candidate.version, "promotion", "promoted" if promoted else "rejected")
    client.set_model_version_tag(MODEL_NAME, candidate.version, "promotion_reason", reason)
    return Promotion(promoted, reason, int(candidate.version), accuracy,
                     None if current is None else int(current.version), old)


def load_champion(client: MlflowClient, device: str = "cpu") -> SketchClassifier | None:
    """The champion classifier in eval mode, None when nothing has been promoted yet."""
    current = champion(client)
    if current is None:
        return None
    with tempfile.TemporaryDirectory(prefix="s2f-classifier-") as tmp:
        local = client.download_artifacts(current.run_id, f"{ARTIFACT_PATH}/{FILE_NAME}", tmp)
        return load_classifier(local, device)
