"""The DVC pipeline on a real scratch git+DVC repo with the tiny profile (real `dvc`, no mocks)."""
from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from sketch2fashion.params import load_params, with_profile
from sketch2fashion.pipeline import changed_stages, make_scratch_project, run_dvc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, project_root):
    params = with_profile(load_params(project_root / "params.yaml"), project_root / "profiles" / "tiny.yaml")
    project = make_scratch_project(project_root, tmp_path_factory.mktemp("pipeline") / "proj", params)
    first = run_dvc(project, "repro")
    return project, params, first


def _per_category(params, prefix):
    return {f"{prefix}@{c}" for c in params["categories"]}


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_first_repro_runs_every_stage_and_second_runs_none(tiny):
    project, params, first = tiny
    expected = {"demo_data", "split"} | _per_category(params, "ingest") | _per_category(params, "edges")
    assert set(first.stages_run) == expected
    second = run_dvc(project, "repro")
    assert second.stages_run == [], second.output
    assert changed_stages(project) == {}


def test_outputs_cover_every_category_and_split(tiny):
    project, params, _ = tiny
    per_cat = params["demo"]["per_category"]
    with open(project / "data" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == per_cat * len(params["categories"])
    assert {r["split"] for r in rows} <= {"train", "val"} and {r["split"] for r in rows} == {"train", "val"}
    for cat in params["categories"]:
        raws = sorted((project / "data" / "raw" / cat).glob("*.png"))
        edges = sorted((project / "data" / "edges" / cat).glob("*.png"))
        assert len(raws) == per_cat
        assert [p.name for p in edges] == [p.name for p in raws]
        assert (project / "reports" / "edges" / f"{cat}.json").is_file()


def test_dag_names_per_category_stages(tiny):
    project, params, _ = tiny
    dag = run_dvc(project, "dag").output
    for name in _per_category(params, "edges") | _per_category(params, "ingest") | {"split"}:
        assert name in dag


def test_push_then_pull_restores_data_from_the_local_remote(tiny):
    project, _, _ = tiny
    before = _tree_digest(project / "data")
    run_dvc(project, "push")
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    run_dvc(project, "pull")
    assert _tree_digest(project / "data") == before
    assert changed_stages(project) == {}


def test_changing_image_size_invalidates_exactly_ingest_and_its_descendants(tiny):
    project, params, _ = tiny
    params_file = project / "params.yaml"
    original = params_file.read_text()
    try:
        changed = yaml.safe_load(original)
        changed["image"]["size"] = params["image"]["size"] // 2
        params_file.write_text(yaml.safe_dump(changed, sort_keys=False))
        # Directly invalidated: only the stages that read image.size.
        assert set(changed_stages(project)) == _per_category(params, "ingest")
        # What would rerun: those and everything downstream, never the demo data.
        dry = run_dvc(project, "repro", "--dry")
        assert set(dry.stages_run) == (_per_category(params, "ingest") | {"split"}
                                       | _per_category(params, "edges"))
    finally:
        params_file.write_text(original)
    assert changed_stages(project) == {}
