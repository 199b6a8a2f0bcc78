"""Keeps tests off any MLflow server a developer configured, and MLflow's globals as they were."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import mlflow

MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextlib.contextmanager
def isolated_mlflow() -> Iterator[None]:
    """Restore MLflow's global URIs, the env vars it exports and the active run afterwards."""
    saved = {key: os.environ.get(key) for key in MLFLOW_ENV}
    for key in MLFLOW_ENV:
        os.environ.pop(key, None)  # a developer's own server must never receive test runs
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
