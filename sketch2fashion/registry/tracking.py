"""Where MLflow keeps runs and models, and the lineage tags every training run carries.

By default the store is embedded in the project: SQLite at `<root>/mlflow/mlflow.db` with
artifacts under `<root>/mlflow/artifacts`, so a fresh checkout tracks and registers models
without a server. Setting `MLFLOW_TRACKING_URI` points everything at a server instead.

Never put an `__init__.py` into `<root>/mlflow/`: the folder would then shadow the mlflow package.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
STORE_DIR = "mlflow"
DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
UNKNOWN = "unknown"


def tracking_uri(project_root: Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` when set, else the project's SQLite store (absolute path)."""
    from_env = os.environ.get(TRACKING_URI_ENV, "").strip()
    if from_env:
        return from_env
    return "sqlite:///" + (_root(project_root) / STORE_DIR / DB_NAME).as_posix()


def artifact_root_for(uri: str) -> Path | None:
    """Artifacts of a SQLite store live beside its database; a server chooses its own (None).

    Without an explicit location MLflow would put a SQLite store's artifacts in `./mlruns` of
    whatever folder the process happened to start in.
    """
    db_path = sqlite_path(uri)
    return None if db_path is None else db_path.parent / ARTIFACTS_DIR


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI, None for any other kind of store.

    SQLAlchemy's form, not a plain URL: `sqlite:///rel/path.db` is relative to the working
    folder and `sqlite:////abs/path.db` absolute, so urlparse's path would be off by a slash.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = unquote(uri[len(prefix):].split("?", 1)[0])
    if not path or path == ":memory:":
        return None
    return Path(path).absolute()


def configure(project_root: Path | None = None) -> MlflowClient:
    """Point MLflow's tracking and registry at the project store; returns a client for it.

    MLflow exports the URIs to `MLFLOW_TRACKING_URI` / `MLFLOW_REGISTRY_URI` in os.environ, so
    child processes (DVC stages, a serving worker) inherit the same store.
    """
    uri = tracking_uri(project_root)
    artifacts = artifact_root_for(uri)
    if artifacts is not None:
        if (artifacts.parent / "__init__.py").exists():
            raise RuntimeError(f"{artifacts.parent / '__init__.py'} makes that folder shadow the "
                               "mlflow package; delete it")
        artifacts.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def get_or_create_experiment(name: str, artifact_root: Path | None = None,
                             client: MlflowClient | None = None) -> str:
    """The id of experiment `name`, created (artifacts in `<artifact_root>/<name>`) if missing.

    `artifact_root=None` uses `artifact_root_for(current tracking URI)`. A deleted experiment of
    that name is restored rather than failing, and a concurrent creator is tolerated.
    """
    client = client or MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    root = artifact_root if artifact_root is not None else artifact_root_for(mlflow.get_tracking_uri())
    location = (Path(root).resolve() / _slug(name)).as_uri() if root is not None else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        again = client.get_experiment_by_name(name)
        if again is None:
            raise
        return again.experiment_id


def run_tags(category: str, project_root: Path | None = None) -> dict[str, str]:
    """Lineage tags for a training run: which category, which code, which data."""
    root = _root(project_root)
    return {
        "category": category,
        "git_commit": git_commit(root),
        "dvc_data_hash": data_hash(category, root),
    }


def git_commit(project_root: Path | None = None) -> str:
    """`git rev-parse HEAD` of the project, or "unknown" outside git (or without git)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_root(project_root),
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else UNKNOWN


def data_hash(category: str, project_root: Path | None = None) -> str:
    """A stable sha256 of one category's training data, "unknown" when nothing describes it.

    It combines the md5s DVC recorded in dvc.lock for the outputs of the category's stages
    (`ingest@<category>`, `edges@<category>`, ...: DVC has already hashed those folders, so this
    costs nothing) with that category's rows of data/manifest.csv, which hold its train/val split.
    Stage *deps* are left out on purpose: they include code and the shared source folder, which
    would change the hash without changing this category's data.
    """
    root = _root(project_root)
    parts = {
        "dvc_lock_outs": _lock_outs(root / "dvc.lock", category),
        "manifest_rows": _manifest_rows_digest(root / "data" / "manifest.csv", category),
    }
    if not parts["dvc_lock_outs"] and parts["manifest_rows"] is None:
        return UNKNOWN
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _lock_outs(lock_path: Path, category: str) -> list[list[str]]:
    """[stage, path, md5] for every out of the `<stage>@<category>` entries in dvc.lock."""
    try:
        lock = yaml.safe_load(lock_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict):
        return []
    found = []
    for stage, entry in stages.items():
        if not str(stage).endswith(f"@{category}") or not isinstance(entry, dict):
            continue
        for out in entry.get("outs") or []:
            if isinstance(out, dict) and out.get("path"):
                digest = out.get("md5") or out.get("etag") or out.get("checksum") or ""
                found.append([str(stage), str(out["path"]), str(digest)])
    return sorted(found)


def _manifest_rows_digest(manifest: Path, category: str) -> str | None:
    """sha256 over the category's manifest rows (sorted, all columns), None without a manifest."""
    try:
        with manifest.open(newline="", encoding="utf-8") as fh:
            rows = [row for row in csv.DictReader(fh) if row.get("category") == category]
    except OSError:
        return None
    lines = sorted(json.dumps(row, sort_keys=True) for row in rows)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _slug(name: str) -> str:
    """A folder name for an experiment: keeps letters, digits, '-', '_' and '.'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"


def _root(project_root: Path | None) -> Path:
    return Path(project_root if project_root is not None else Path.cwd()).resolve()
