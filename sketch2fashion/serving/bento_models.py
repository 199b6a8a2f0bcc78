"""Champions in the BentoML model store, so a built Bento carries its colorizers with it.

`s2f bento import` copies each category's registry champion into the local BentoML store as
`colorizer-<category>` (a new store version per registry version, labelled with it), and the
`sketch-classifier` champion behind `category=auto` as `sketch-classifier`; `service.py` declares
the latest of each as models of the service, and `bentoml build` packs them into the Bento.
Inside a running Bento the store is the Bento's own, so `bundled` serving needs no registry at all.
(The catalog encoder travels inside the catalog index version the Bento includes.)
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sketch2fashion.registry.promotion import registered_model_name

LATEST = "latest"
CLASSIFIER_MODEL = "sketch-classifier"
CLASSIFIER_FILE = "classifier.pt"


def bento_model_name(category: str) -> str:
    """Same name as the registered model: `colorizer-<category>`."""
    return registered_model_name(category)


def stored_model(category: str) -> Any | None:
    """The latest `colorizer-<category>` in the BentoML store, None when there is none."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(f"{bento_model_name(category)}:{LATEST}")
    except NotFound:
        return None


def stored_classifier() -> Any | None:
    """The latest `sketch-classifier` in the BentoML store, None when there is none."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(f"{CLASSIFIER_MODEL}:{LATEST}")
    except NotFound:
        return None


def bundled_refs(categories: Iterable[str]) -> list[Any]:
    """`BentoModel` references for the categories that have a stored model, and for the stored
    sketch classifier (for `bentoml build`; every model of a Bento is in its own store).

    Only stored ones: BentoML resolves every declared model when a server starts, so declaring
    a missing one would stop a plain `bentoml serve` in a checkout that never ran the import.
    """
    from bentoml.models import BentoModel

    stored = [stored_model(category) for category in categories] + [stored_classifier()]
    return [BentoModel(str(model.tag)) for model in stored if model is not None]


def load_stored_classifier(model: Any) -> Any:
    """A stored sketch classifier (classifier/model.py), in eval mode."""
    from sketch2fashion.classifier.model import load_classifier

    return load_classifier(model.path_of(CLASSIFIER_FILE))


def import_classifier(client: Any) -> dict[str, Any]:
    """Copy the `sketch-classifier` champion into the BentoML store (idempotent); one row like
    `import_champions`' (`imported`: True, False when already stored, None without a champion)."""
    import shutil
    import tempfile

    import bentoml

    from sketch2fashion.classifier import registry

    current = registry.champion(client)
    row = {"model": CLASSIFIER_MODEL, "version": None if current is None else int(current.version),
           "run_id": None if current is None else current.run_id}
    if current is None:
        return {**row, "imported": None, "tag": None}
    stored = stored_classifier()
    if stored is not None and _int((stored.info.metadata or {}).get("registry_version")) == row["version"] \
            and (stored.info.metadata or {}).get("run_id") == row["run_id"]:
        return {**row, "imported": False, "tag": str(stored.tag)}
    metadata = {"registry_version": row["version"], "run_id": row["run_id"],
                **{k: float(current.tags[k]) for k in ("accuracy", "test_accuracy") if k in current.tags}}
    with tempfile.TemporaryDirectory(prefix="s2f-classifier-") as tmp:
        local = client.download_artifacts(current.run_id, f"{registry.ARTIFACT_PATH}/{registry.FILE_NAME}", tmp)
        with bentoml.models.create(CLASSIFIER_MODEL, labels={"registry_version": str(row["version"]),
                                                             "alias": "champion"}, metadata=metadata) as model:
            shutil.copyfile(local, model.path_of(CLASSIFIER_FILE))
    return {**row, "imported": True, "tag": str(model.tag)}


def stored_info(model: Any) -> dict[str, Any]:
    """Registry version, epoch, ssim and run id recorded on a stored model at import time."""
    meta = dict(model.info.metadata or {})
    return {"version": _int(meta.get("registry_version")), "epoch": _int(meta.get("epoch")),
            "ssim": _float(meta.get("ssim")), "run_id": meta.get("run_id") or None}


def load_stored(model: Any, model_config: dict[str, Any]) -> Any:
    """A stored colorizer as an MLflow pyfunc model, loaded with serving's device/dtype."""
    import mlflow.pyfunc
    from _bentoml_impl.frameworks.mlflow import MLFLOW_MODEL_FOLDER

    return mlflow.pyfunc.load_model(model.path_of(MLFLOW_MODEL_FOLDER), model_config=model_config)


def import_champions(client: Any, categories: Iterable[str]) -> list[dict[str, Any]]:
    """Copy each category's registry champion into the BentoML store; returns one row per category.

    Idempotent: a category whose latest stored model already is its champion is left alone.
    Categories without a champion are reported with `imported: None`.
    """
    import bentoml

    from sketch2fashion.registry.promotion import list_champions

    rows = []
    for row in list_champions(client, list(categories)):
        category, version = row["category"], row["version"]
        if version is None:
            rows.append({**row, "imported": None, "tag": None})
            continue
        stored = stored_model(category)
        if stored is not None and stored_info(stored)["version"] == version \
                and stored_info(stored)["run_id"] == row["run_id"]:
            rows.append({**row, "imported": False, "tag": str(stored.tag)})
            continue
        model = bentoml.mlflow.import_model(
            bento_model_name(category),
            f"models:/{registered_model_name(category)}/{version}",
            labels={"category": category, "registry_version": str(version), "alias": "champion"},
            metadata={k: v for k, v in {"category": category, "registry_version": version,
                                        "epoch": row["epoch"], "ssim": row["ssim"],
                                        "run_id": row["run_id"]}.items() if v is not None},
        )
        rows.append({**row, "imported": True, "tag": str(model.tag)})
    return rows


def _int(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None
