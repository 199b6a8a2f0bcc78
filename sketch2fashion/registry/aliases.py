"""Reading the registry the way every gate needs it: the version behind an alias, a numeric tag."""
from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient


def aliased_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version of registered model `name` behind `alias`; None when the alias or model does not exist.

    Reads the model's alias map instead of `get_model_version_by_alias`, whose "no such alias"
    error code (INVALID_PARAMETER_VALUE) cannot be told apart from a real bad request.
    """
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def tag_float(version: ModelVersion | None, key: str) -> float | None:
    """A version's numeric tag (a score recorded at registration), None when absent or not a number."""
    try:
        return float(version.tags[key]) if version is not None else None
    except (KeyError, TypeError, ValueError):
        return None
