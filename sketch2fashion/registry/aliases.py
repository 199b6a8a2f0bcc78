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


CHAMPION = "champion"
PREVIOUS = "previous"


def move_champion(client: MlflowClient, name: str, version: int | str) -> ModelVersion | None:
    """Give `champion` to `version` and `previous` to the version that held it; returns that one.

    `previous` moves first: an interruption in between leaves the old champion serving, never
    a model without one.
    """
    current = aliased_version(client, name, CHAMPION)
    if current is not None and int(current.version) == int(version):
        return current
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current.version)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return current


def tag_outcome(client: MlflowClient, name: str, version: int | str, outcome: str, reason: str) -> None:
    """Record a registry decision on the version (tags `promotion` and `promotion_reason`)."""
    client.set_model_version_tag(name, str(version), "promotion", outcome)
    client.set_model_version_tag(name, str(version), "promotion_reason", reason)
