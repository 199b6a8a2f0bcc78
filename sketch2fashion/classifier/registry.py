"""The sketch classifier in the MLflow registry: model `sketch-classifier`, alias `champion` serves.

The registered model is the plain `save_classifier` file, not a pyfunc: its only consumer is our
serving code, which wants the `SketchClassifier` itself (`predict_category`). MLflow 3's
`register_model` accepts only logged models, so the version is created from the run's artifact
folder with `create_model_version`. Whether a retrain becomes champion is the champion gate's
decision on the test split (registry/gate.py: per-sketch correctness of the candidate and the
champion on the same test sketches), applied by the train_classifier stage; serving follows the
alias (serving/auto_category.py).
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

from sketch2fashion.classifier.model import SketchClassifier, load_classifier
from sketch2fashion.registry.aliases import CHAMPION, aliased_version

MODEL_NAME = "sketch-classifier"
ARTIFACT_PATH = "classifier"
FILE_NAME = "classifier.pt"


def log_and_register(classifier_file: str | Path, accuracy: float, client: MlflowClient,
                     tags: Mapping[str, Any] | None = None) -> ModelVersion:
    """Log the file into the active run as `classifier/classifier.pt`; register it as a new version.

    The version carries `accuracy` (its val accuracy) and `tags`.
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


def load_champion(client: MlflowClient, device: str = "cpu") -> SketchClassifier | None:
    """The champion classifier in eval mode, None when nothing has been promoted yet."""
    current = champion(client)
    return None if current is None else load_version(client, current, device)


def load_version(client: MlflowClient, version: ModelVersion, device: str = "cpu") -> SketchClassifier:
    """A registered version's classifier in eval mode."""
    with tempfile.TemporaryDirectory(prefix="s2f-classifier-") as tmp:
        local = client.download_artifacts(version.run_id, f"{ARTIFACT_PATH}/{FILE_NAME}", tmp)
        return load_classifier(local, device)
