"""Which colorizer version serves each category: registration, the champion gate, rollback.

One registered model per category, `colorizer-<category>`. Serving loads the alias `champion`
(`models:/colorizer-top@champion`); the version it replaced keeps the alias `previous`, so a
rollback is one alias move. A retrained version becomes champion only when its validation SSIM
beats the champion's by at least `min_gain`, so noise between retrains does not churn the model
shoppers see — or, with a `HintRule`, when it follows the shopper's colour hints clearly better
(hint Delta E lower by `min_gain`) at an SSIM no more than `max_ssim_loss` below: SSIM alone
barely notices a model that paints every garment beige. A third way is no new model at all: the
champion's own weights (same run, same epoch) exported in a new serving format take over when
they score within `REEXPORT_SSIM_TOLERANCE` of it.

Alias moves are ordered so that an interruption never leaves a category without a champion
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

from sketch2fashion.registry.aliases import aliased_version, tag_float

CHAMPION = "champion"
PREVIOUS = "previous"
MODEL_PREFIX = "colorizer-"
PROMOTED = "promoted"
REJECTED = "rejected"
ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class HintRule:
    """The second way to champion: clearly better hint colours, SSIM about as good."""

    min_gain: float  # Delta E the candidate must improve on the champion's
    max_ssim_loss: float  # SSIM it may lose meanwhile


HINT_TAG = "hint_delta_e"
FORMAT_TAG = "format"
LEGACY_FORMAT = "torchscript-frozen-channels-last"
"""The format of versions registered before the tag existed (all of them TorchScript)."""
REEXPORT_SSIM_TOLERANCE = 0.005
"""How much val SSIM a re-export of the champion's weights may lose (bf16 kernels round differently)."""


class PromotionError(RuntimeError):
    """A registry request that cannot be carried out; the message says what to do instead."""


@dataclass(frozen=True)
class Decision:
    """The outcome of a promotion request, as recorded on the version and in the DVC report.

    `promoted` means "the candidate is the champion after this call".
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


def champion(client: MlflowClient, category: str) -> ModelVersion | None:
    """The version serving `category`, or None before the first promotion."""
    return _aliased(client, category, CHAMPION)


def previous(client: MlflowClient, category: str) -> ModelVersion | None:
    """The version that served before the current champion, or None."""
    return _aliased(client, category, PREVIOUS)


def promote_if_better(client: MlflowClient, category: str, version: int | str, *,
                      min_gain: float, hint_rule: HintRule | None = None) -> Decision:
    """Make `version` champion if there is none or its SSIM >= champion SSIM + `min_gain`.

    Either way the decision is recorded on the version as tags `promotion` (promoted /
    rejected) and `promotion_reason`.
    """
    candidate = _get_version(client, category, version)
    new_ssim = _ssim(candidate)
    current = champion(client, category)
    if current is None:
        return _promote(client, category, candidate, None, "no champion yet")
    old_ssim = _ssim(current)
    if current.version == candidate.version:
        return Decision(True, "already the champion", new_ssim, old_ssim, int(current.version),
                        int(candidate.version), category)
    gain = new_ssim - old_ssim
    if new_ssim >= old_ssim + min_gain:
        return _promote(client, category, candidate, current,
                        f"ssim {new_ssim:.4f} beats champion v{current.version} "
                        f"({old_ssim:.4f}) by {gain:+.4f} >= min_gain {min_gain:g}")
    if _is_reexport(candidate, current) and new_ssim >= old_ssim - REEXPORT_SSIM_TOLERANCE:
        return _promote(client, category, candidate, current,
                        f"re-export of champion v{current.version}'s weights (run {current.run_id}, epoch "
                        f"{current.tags.get('epoch')}) as {_format(candidate)}: ssim {new_ssim:.4f} vs "
                        f"{old_ssim:.4f}, within {REEXPORT_SSIM_TOLERANCE:g}")
    new_hint, old_hint = tag_float(candidate, HINT_TAG), tag_float(current, HINT_TAG)
    if hint_rule is not None and new_hint is not None and old_hint is not None:
        if old_hint - new_hint >= hint_rule.min_gain and new_ssim >= old_ssim - hint_rule.max_ssim_loss:
            return _promote(client, category, candidate, current,
                            f"hint delta E {new_hint:.2f} beats champion v{current.version} ({old_hint:.2f}) "
                            f"by >= {hint_rule.min_gain:g} with ssim {new_ssim:.4f} vs {old_ssim:.4f} "
                            f"(may lose {hint_rule.max_ssim_loss:g})")
    reason = (f"ssim {new_ssim:.4f} vs champion v{current.version} ({old_ssim:.4f}): "
              f"gain {gain:+.4f} < min_gain {min_gain:g}")
    if new_hint is not None and old_hint is not None:
        reason += f"; hint delta E {new_hint:.2f} vs {old_hint:.2f}"
    _record(client, category, candidate, REJECTED, reason)
    return Decision(False, reason, new_ssim, old_ssim, int(current.version),
                    int(candidate.version), category)


def promote(client: MlflowClient, category: str, version: int | str) -> Decision:
    """Make `version` champion whatever its score (a human decision); the old one becomes previous."""
    candidate = _get_version(client, category, version)
    current = champion(client, category)
    if current is not None and current.version == candidate.version:
        return Decision(True, "already the champion", _ssim_or_none(candidate),
                        _ssim_or_none(current), int(current.version), int(candidate.version), category)
    return _promote(client, category, candidate, current, "manual promotion")


def rollback(client: MlflowClient, category: str) -> Decision:
    """Give `champion` back to the `previous` version; the demoted one becomes `previous`."""
    name = registered_model_name(category)
    target = previous(client, category)
    if target is None:
        raise PromotionError(f"{name} has no '{PREVIOUS}' version to roll back to "
                             f"(nothing was promoted over a champion yet)")
    current = champion(client, category)
    if current is not None and current.version == target.version:
        raise PromotionError(f"{name}: '{PREVIOUS}' and '{CHAMPION}' are both version "
                             f"{target.version}; promote another version explicitly")
    # champion first: an interruption after it leaves the rolled-back version serving.
    client.set_registered_model_alias(name, CHAMPION, target.version)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current.version)
        _record(client, category, current, ROLLED_BACK, f"rolled back to version {target.version}")
    else:
        client.delete_registered_model_alias(name, PREVIOUS)
    reason = f"rollback from version {current.version}" if current is not None else "rollback"
    _record(client, category, target, PROMOTED, reason)
    return Decision(True, reason, _ssim_or_none(target), _ssim_or_none(current) if current else None,
                    int(current.version) if current else None, int(target.version), category)


def list_champions(client: MlflowClient, categories: Iterable[str]) -> list[dict[str, Any]]:
    """One row per category: champion version, epoch, ssim and run_id (None where there is none)."""
    rows = []
    for category in categories:
        current = champion(client, category)
        if current is None:
            rows.append({"category": category, "version": None, "epoch": None, "ssim": None,
                         "run_id": None})
            continue
        epoch = current.tags.get("epoch")
        rows.append({"category": category, "version": int(current.version),
                     "epoch": int(epoch) if epoch not in (None, "") else None,
                     "ssim": _ssim_or_none(current), "run_id": current.run_id or current.tags.get("run_id")})
    return rows


def _promote(client: MlflowClient, category: str, candidate: ModelVersion,
             current: ModelVersion | None, reason: str) -> Decision:
    """Move the aliases: `previous` to the old champion first, then `champion` to the candidate."""
    name = registered_model_name(category)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current.version)
    client.set_registered_model_alias(name, CHAMPION, candidate.version)
    _record(client, category, candidate, PROMOTED, reason)
    return Decision(True, reason, _ssim_or_none(candidate),
                    _ssim_or_none(current) if current is not None else None,
                    int(current.version) if current is not None else None,
                    int(candidate.version), category)


def _record(client: MlflowClient, category: str, version: ModelVersion, outcome: str,
            reason: str) -> None:
    name = registered_model_name(category)
    client.set_model_version_tag(name, version.version, "promotion", outcome)
    client.set_model_version_tag(name, version.version, "promotion_reason", reason)


def _aliased(client: MlflowClient, category: str, alias: str) -> ModelVersion | None:
    """The version behind `alias`, None when the alias or the registered model does not exist."""
    return aliased_version(client, registered_model_name(category), alias)


def _get_version(client: MlflowClient, category: str, version: int | str) -> ModelVersion:
    """The version, or a PromotionError that lists the versions which do exist."""
    name = registered_model_name(category)
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


def _is_reexport(candidate: ModelVersion, current: ModelVersion) -> bool:
    """The same weights (run and epoch) as the champion, in another serving format."""
    return (candidate.run_id == current.run_id and candidate.tags.get("epoch") == current.tags.get("epoch")
            and _format(candidate) != _format(current))



def _ssim(version: ModelVersion) -> float:
    value = _ssim_or_none(version)
    if value is None:
        raise PromotionError(f"{version.name} version {version.version} has no numeric 'ssim' tag; "
                             "register it with register_version(..., ssim=...)")
    return value


def _ssim_or_none(version: ModelVersion | None) -> float | None:
    return tag_float(version, "ssim")
