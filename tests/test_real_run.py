"""`s2f real` on a handful of the real photos (tiny budget): every stage, its own registry, cards.

The real path is the product's reason to exist, so CI runs it end to end on ten photos per
category of `../shared/data/clothing-small`: real `dvc repro` in its own project folder, a real
MLflow store there, the generated product cards in the catalog, the tuned search weights, and
the same quality floors `s2f smoke` holds the demo to.
"""
from __future__ import annotations

import json
import sqlite3

import pytest

from sketch2fashion.catalog.cards import GENERATED_BRAND, GENERATED_LINK
from sketch2fashion.params import load_params
from sketch2fashion.pipeline import changed_stages
from sketch2fashion.quality import pipeline_problems
from sketch2fashion.real_run import RealRunError, prepare_project, run_real

PER_CATEGORY = 10

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def real_project(project_root, shared_data, tmp_path_factory):
    project = tmp_path_factory.mktemp("real") / "project"
    demo_store = project_root / "mlflow" / "mlflow.db"
    before = demo_store.stat().st_mtime_ns if demo_store.exists() else None
    summary = run_real(project_root, project, budget="tiny", photos=shared_data, per_category=PER_CATEGORY)
    after = demo_store.stat().st_mtime_ns if demo_store.exists() else None
    return project, summary, (before, after)


def test_every_stage_ran_into_its_own_registry_and_the_demo_is_untouched(real_project):
    project, summary, (before, after) = real_project
    assert before == after  # the repository's own MLflow store (the demo's) was not written
    assert summary["tracking_uri"] == f"sqlite:///{project / 'mlflow' / 'mlflow.db'}"
    params = load_params(project / "params.yaml")
    with sqlite3.connect(project / "mlflow" / "mlflow.db") as db:
        aliases = {name for name, alias in db.execute("SELECT name, alias FROM registered_model_aliases")
                   if alias == "champion"}
    assert aliases >= {f"colorizer-{c}" for c in params["categories"]} | {"catalog-encoder", "sketch-classifier"}
    assert not changed_stages(project)  # nothing left to run: a second `s2f real` resumes to a no-op


def test_the_champions_clear_the_quality_floors_on_real_photos(real_project):
    project, _, _ = real_project
    assert pipeline_problems(project, load_params(project / "params.yaml")) == []


def test_catalog_holds_each_photo_as_a_generated_card(real_project, shared_data):
    project, _, _ = real_project
    params = load_params(project / "params.yaml")
    with sqlite3.connect(project / "data" / "catalog" / "catalog.sqlite") as db:
        rows = db.execute("SELECT id, brand, link, category FROM products").fetchall()
    assert len(rows) == PER_CATEGORY * len(params["categories"])
    assert {brand for _, brand, _, _ in rows} == {GENERATED_BRAND}
    assert all(link.startswith(GENERATED_LINK) for _, _, link, _ in rows)
    assert {category for *_, category in rows} == set(params["categories"])
    copied = [p for p in project.rglob("*.jpg") if not p.is_symlink()]
    assert not copied  # photos are linked where they lie (the subset folder holds symlinks), never copied


def test_search_uses_weights_tuned_on_train_and_reports_the_test_split(real_project):
    project, _, _ = real_project
    report = json.loads((project / "reports" / "search.json").read_text())
    assert report["split"] == "test" and report["weights_from"] == "models/search_weights.yaml"
    tuned = (project / "models" / "search_weights.yaml").read_text()
    assert "split: train" in tuned
    assert {"sketch", "colour", "photo", "sketch+colour", "fused"} <= set(report)


def test_a_missing_photo_folder_is_a_clear_error(project_root, tmp_path):
    with pytest.raises(RealRunError, match="no such photo folder"):
        prepare_project(project_root, tmp_path / "p", photos=tmp_path / "nowhere")
