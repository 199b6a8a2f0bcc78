"""`s2f bento import` / `bentoml build`: champions bundled so a Bento serves without the registry.

Runs in subprocesses with their own BENTOML_HOME, so the developer's BentoML store is never
touched and BentoML's configuration (read once per process) is fresh.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from serving_fixtures import MLFLOW_ENV, add_classifier, make_project
from waiting import HANG_SECONDS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(args: list[str], *, cwd: Path, home: Path, project: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_ENV}
    env.update({"BENTOML_HOME": str(home), "S2F_PROJECT_ROOT": str(project), "BENTOML_DO_NOT_TRACK": "True"})
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


BUNDLED_BOARD = """
import json
from sketch2fashion.serving.auto_category import CategoryClassifier
from sketch2fashion.serving.champions import ChampionBoard
from sketch2fashion.serving.config import load_serving_config
board = ChampionBoard(load_serving_config(), source="bundled")
board.sync()
classifier = CategoryClassifier(load_serving_config(), source="bundled")
classifier.sync()
print(json.dumps({"ready": board.ready(), "models": board.describe(), "classifier": classifier.describe()}))
"""


def test_import_is_idempotent_and_bundled_models_serve(tmp_path):
    project = make_project(tmp_path / "project", catalog=False).root
    classifier_version = add_classifier(project)
    home = tmp_path / "bentoml"
    first = json.loads(run([str(BIN / "s2f"), "bento", "import", "--json"], cwd=project, home=home,
                           project=project).stdout)
    assert {(r.get("category") or r["model"], r["version"], r["imported"]) for r in first} == {
        ("top", 1, True), ("pants", 1, True), ("sketch-classifier", classifier_version, True)}
    again = json.loads(run([str(BIN / "s2f"), "bento", "import", "--json"], cwd=project, home=home,
                           project=project).stdout)
    assert all(r["imported"] is False for r in again)
    assert [r["tag"] for r in again] == [r["tag"] for r in first]

    # The Colorizer's bundled source: models from the BentoML store, registry facts kept.
    board = json.loads(run([sys.executable, "-c", BUNDLED_BOARD], cwd=ROOT, home=home,
                           project=project).stdout.strip().splitlines()[-1])
    assert board["ready"] is True
    for row in board["models"]:
        assert row["source"] == "bundled" and row["version"] == 1 and row["ssim"] == pytest.approx(0.5)
        assert len(row["run_id"]) == 32
    assert board["classifier"]["source"] == "bundled" and board["classifier"]["version"] == classifier_version

    # `bentoml build` packs the stored champions (and the classifier: every model of a Bento is
    # in its own store) as models of the Colorizer (`serving.colorizer: service`, the default; the
    # API with `inline`).
    run([str(BIN / "bentoml"), "build"], cwd=ROOT, home=home, project=project)
    (bento_yaml,) = (home / "bentos" / "sketch2fashion").glob("*/bento.yaml")
    info = yaml.safe_load(bento_yaml.read_text())
    models = {s["name"]: {m["tag"] for m in s.get("models") or []} for s in info["services"]}
    assert models["Colorizer"] == {r["tag"] for r in first}, models
    src = bento_yaml.parent / "src"
    assert (src / "service.py").is_file() and (src / "sketch2fashion" / "serving" / "static" / "index.html").is_file()
    assert not (src / "mlflow").exists()  # no registry inside: the Bento serves its bundled models
