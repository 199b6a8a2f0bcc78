"""Which version serves: colorizer registration, the champion and previous aliases, manual moves.

One registered model per category, `colorizer-<category>`. Serving loads the alias `champion`
(`models:/colorizer-top@champion`); the version it replaced keeps the alias `previous`, so a
rollback is one alias move. Whether a retrained version becomes champion is decided by the
champion gate on the test split (registry/gate.py, applied by registry/gatekeeper.py, the same
for `sketch-classifier` and `catalog-encoder`); this module holds what is specific to the
colorizers (registration from a run, the serving format) and the by-hand moves, `promote` and
`rollback`, which work on every registered model the product serves.

Alias moves are ordered so that an interruption never leaves a model without a champion
when it had one: promoting moves `previous` first and `champion` second (stopping in between
leaves the old champion serving); rolling back moves `champion` first and `previous` second.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from sketch2fashion.registry.aliases import CHAMPION, PREVIOUS, aliased_version, move_champion, tag_float, tag_outcome

MODEL_PREFIX = "colorizer-"
PROMOTED = "promoted"
REJECTED = "rejected"
ROLLED_BACK = "rolled_back"
FORMAT_TAG = "format"
LEGACY_FORMAT = "torchscript-frozen-channels-last"
"""The format of versions registered before the tag existed (all of them TorchScript)."""
SERVED_MODELS = ("sketch-classifier", "catalog-encoder")
"""The registered models besides the colorizers (classifier/registry.py, registry/encoder_model.py)."""


class PromotionError(RuntimeError):
    """A registry request that cannot be carried out; the message says what to do instead."""


@dataclass(frozen=True)
class Decision:
    """The outcome of a by-hand promotion or rollback, as recorded on the version.

    `promoted` means "the version is the champion after this call"; the ssim fields are the
    colorizers' val SSIM tags (None for other models).
    """

    promoted: bool
    reason: str
    new_ssim: float | None
    old_ssim: float | None
    old_version: int | None
    version: int | None = None
    category: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def registered_model_name(category: str) -> str:
    """The registry name of a category's colorizer: `colorizer-<category>`."""
    if not category or "/" in category:
        raise ValueError(f"invalid category {category!r}")
    return f"{MODEL_PREFIX}{category}"


def register_version(
    run_id: str,
    category: str,
    *,
    artifact_path: str = "model",
    ssim: float,
    epoch: int,
    extra_tags: Mapping[str, Any] | None = None,
    model_uri: str | None = None,
    export_format: str | None = None,
) -> ModelVersion:
    """Register the model a run logged as a new version of `colorizer-<category>`.

    The model is `runs:/<run_id>/<artifact_path>` unless `model_uri` (such as the
    `models:/m-...` URI of `ModelInfo`) names it exactly; prefer that when a run logged several
    models under one name. Registering a run that already has a version returns that version
    (a re-run DVC stage must not pile up duplicates). Uses the global tracking/registry URI, as
    set by `tracking.configure()`. With `export_format` (the logged model's serving format), a
    run's model exported in a new format is a new version; without it any version of the run counts.
    """
    name = registered_model_name(category)
    client = MlflowClient()
    existing = _version_of_run(client, name, run_id, artifact_path, export_format)
    if existing is not None:
        return existing
    tags = {**{k: str(v) for k, v in (extra_tags or {}).items()},
            "ssim": repr(float(ssim)), "epoch": str(int(epoch)), "category": category,
            "run_id": run_id, "artifact_path": artifact_path,
            **({FORMAT_TAG: export_format} if export_format else {})}
    return mlflow.register_model(model_uri or f"runs:/{run_id}/{artifact_path}", name, tags=tags)


def model_name(target: str) -> str:
    """The registered model a command names: `sketch-classifier`, `catalog-encoder`, a full
    `colorizer-<category>`, or a bare category (its colorizer)."""
    if target in SERVED_MODELS or target.startswith(MODEL_PREFIX):
        return target
    return registered_model_name(target)


def champion(client: MlflowClient, target: str) -> ModelVersion | None:
    """The version serving `target` (a category or a registered model name), None before the first promotion."""
    return aliased_version(client, model_name(target), CHAMPION)


def previous(client: MlflowClient, target: str) -> ModelVersion | None:
    """The version that served before the current champion, or None."""
    return aliased_version(client, model_name(target), PREVIOUS)


def promote(client: MlflowClient, target: str, version: int | str) -> Decision:
    """Make `version` champion whatever its score (a human decision); the old one becomes previous.

    `target` is a category (its colorizer) or a registered model name (`s2f promote`).
    """
    name = model_name(target)
    candidate = _get_version(client, name, version)
    current = champion(client, target)
    if current is not None and current.version == candidate.version:
        return Decision(True, "already the champion", _ssim_or_none(candidate),
                        _ssim_or_none(current), int(current.version), int(candidate.version), target)
    move_champion(client, name, candidate.version)
    tag_outcome(client, name, candidate.version, PROMOTED, "manual promotion")
    return Decision(True, "manual promotion", _ssim_or_none(candidate),
                    _ssim_or_none(current) if current is not None else None,
                    int(current.version) if current is not None else None, int(candidate.version), target)


def rollback(client: MlflowClient, target: str) -> Decision:
    """Give `champion` back to the `previous` version; the demoted one becomes `previous`."""
    name = model_name(target)
    goal = previous(client, target)
    if goal is None:
        raise PromotionError(f"{name} has no '{PREVIOUS}' version to roll back to "
                             f"(nothing was promoted over a champion yet)")
    current = champion(client, target)
    if current is not None and current.version == goal.version:
        raise PromotionError(f"{name}: '{PREVIOUS}' and '{CHAMPION}' are both version "
                             f"{goal.version}; promote another version explicitly")
    # champion first: an interruption after it leaves the rolled-back version serving.
    client.set_registered_model_alias(name, CHAMPION, goal.version)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current.version)
        tag_outcome(client, name, current.version, ROLLED_BACK, f"rolled back to version {goal.version}")
    else:
        client.delete_registered_model_alias(name, PREVIOUS)
    reason = f"rollback from version {current.version}" if current is not None else "rollback"
    tag_outcome(client, name, goal.version, PROMOTED, reason)
    return Decision(True, reason, _ssim_or_none(goal), _ssim_or_none(current) if current else None,
                    int(current.version) if current else None, int(goal.version), target)


def list_champions(client: MlflowClient, categories: Iterable[str]) -> list[dict[str, Any]]:
    """One row per category: champion version, epoch, val ssim, test ssim and run_id (None where there is none)."""
    rows = []
    for category in categories:
        current = champion(client, category)
        if current is None:
            rows.append({"category": category, "version": None, "epoch": None, "ssim": None,
                         "test_ssim": None, "run_id": None})
            continue
        epoch = current.tags.get("epoch")
        rows.append({"category": category, "version": int(current.version),
                     "epoch": int(epoch) if epoch not in (None, "") else None,
                     "ssim": _ssim_or_none(current), "test_ssim": tag_float(current, "test_ssim"),
                     "run_id": current.run_id or current.tags.get("run_id")})
    return rows


def is_reexport(candidate: ModelVersion, current: ModelVersion | None) -> bool:
    """The same weights (run and epoch) as the champion, in another serving format."""
    return (current is not None and candidate.run_id == current.run_id
            and candidate.tags.get("epoch") == current.tags.get("epoch") and _format(candidate) != _format(current))


def _get_version(client: MlflowClient, name: str, version: int | str) -> ModelVersion:
    """The version, or a PromotionError that lists the versions which do exist."""
    try:
        return client.get_model_version(name, str(int(version)))
    except (ValueError, MlflowException) as exc:
        if isinstance(exc, MlflowException) and exc.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        known = sorted(int(mv.version) for mv in _versions(client, name))
        listing = ", ".join(map(str, known)) if known else "none (nothing registered yet)"
        raise PromotionError(f"{name} has no version {version!r}; existing versions: {listing}") from exc


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    try:
        return list(client.search_model_versions(f"name = '{name}'"))
    except MlflowException:
        return []


def _version_of_run(client: MlflowClient, name: str, run_id: str, artifact_path: str,
                    export_format: str | None = None) -> ModelVersion | None:
    """An existing version of `name` registered from this run's `artifact_path` (in
    `export_format`, when given), if any."""
    for mv in _versions(client, name):
        if mv.run_id == run_id and mv.tags.get("artifact_path", artifact_path) == artifact_path \
                and (export_format is None or _format(mv) == export_format):
            return mv
    return None


def _format(version: ModelVersion) -> str:
    return version.tags.get(FORMAT_TAG, LEGACY_FORMAT)


def _ssim_or_none(version: ModelVersion | None) -> float | None:
    return tag_float(version, "ssim")
