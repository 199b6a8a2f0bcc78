"""The sketch classifier behind `category=auto`: training, inference, persistence, registry, stage.

Training runs on tiny synthetic garments (distinct outline shapes) so it finishes in seconds;
the registry tests use a real SQLite MLflow store in a temporary folder (no mocks).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import cv2
import mlflow
import numpy as np
import pytest
import torch
import yaml

from sketch2fashion.catalog.embedder_training import ProductImages, eval_sketch
from sketch2fashion.classifier import registry
from sketch2fashion.classifier.model import (
    SketchClassifier,
    load_classifier,
    predict_category,
    predict_proba,
    save_classifier,
)
from sketch2fashion.classifier.training import (
    LabelledProducts,
    accuracy_report,
    evaluate_classifier,
    load_labelled,
    train_classifier,
)
from sketch2fashion.colorizer.dataset import hint_options
from sketch2fashion.data.manifest import write_manifest
from sketch2fashion.params import deep_merge, load_params
from sketch2fashion.registry.evidence import classifier_evidence
from sketch2fashion.registry.gate_rules import CLASSIFIER, gate_rule
from sketch2fashion.registry.gatekeeper import gate_version
from sketch2fashion.registry.tracking import configure, get_or_create_experiment
from mlflow_sandbox import isolated_mlflow

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "training" / "train_classifier.py"
SHAPES = ("hat", "top", "skirt")  # drawn as circle, square, triangle
LOAD = 64
TINY = {"image_size": 32, "width": 8, "blocks": 4, "dim": 16}
HINTS = {"min": 0, "max": 4}


def shape_product(kind: int, seed: int, size: int = LOAD) -> ProductImages:
    """A garment whose category is its outline: circle, square or triangle, random size/place."""
    rng = np.random.default_rng([kind, seed])
    r = int(size * rng.uniform(0.25, 0.38))
    cx, cy = (int(v) for v in size // 2 + rng.integers(-size // 10, size // 10 + 1, size=2))
    mask = np.zeros((size, size), np.uint8)
    if kind == 0:
        cv2.circle(mask, (cx, cy), r, 255, -1)
    elif kind == 1:
        cv2.rectangle(mask, (cx - r, cy - r), (cx + r, cy + r), 255, -1)
    else:
        cv2.fillPoly(mask, [np.array([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], np.int32)], 255)
    colour = rng.integers(0, 200, size=3).astype(np.uint8)
    photo = np.where(mask[..., None] > 0, colour, np.uint8(255)).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    edges = np.full((size, size), 255, np.uint8)
    cv2.drawContours(edges, contours, -1, 0, 2)
    return ProductImages(f"{SHAPES[kind]}-{seed:03d}", photo, mask, edges)


def shape_set(per_class: int, first_seed: int) -> LabelledProducts:
    products, labels = [], []
    for kind in range(len(SHAPES)):
        for seed in range(first_seed, first_seed + per_class):
            products.append(shape_product(kind, seed))
            labels.append(kind)
    return LabelledProducts(products, np.array(labels, np.int64), list(SHAPES))


@pytest.fixture(scope="module")
def trained() -> tuple[SketchClassifier, LabelledProducts]:
    """A tiny classifier trained on 3 x 12 shapes, and 3 x 8 unseen shapes to score it on."""
    torch.set_num_threads(1)
    classifier, history = train_classifier(shape_set(12, 0), epochs=8, batch_size=9, lr=3e-3,
                                           hint_params=HINTS, **TINY)
    assert len(history) == 8 and history[-1]["loss"] < history[0]["loss"]
    return classifier, shape_set(8, 100)


def test_training_beats_chance_on_distinct_shapes(trained):
    classifier, val = trained
    report = evaluate_classifier(classifier, val, hint_params=HINTS)
    assert report["accuracy"] >= 0.6, report  # chance is 1/3
    assert report["n"] == 24 and set(report["per_category"]) == set(SHAPES)
    assert np.asarray(report["confusion_matrix"]["matrix"]).sum() == 24


def test_eval_mode_is_deterministic_and_batch_independent(trained):
    classifier, val = trained
    hints = hint_options(HINTS)
    sketches = [eval_sketch(p, 0, hints) for p in val.products[:6]]
    classifier.train()  # predict_proba must switch to eval mode itself, then restore this
    batched = predict_proba(classifier, sketches)
    assert classifier.training
    again = predict_proba(classifier, sketches, batch_size=1)
    np.testing.assert_array_equal(batched, predict_proba(classifier, sketches))
    np.testing.assert_allclose(batched, again, atol=1e-6)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)
    classifier.eval()


def test_a_drawing_and_its_mirror_image_get_the_same_answer(trained):
    """Garments are mirror-symmetric: predict_proba averages each drawing with its mirror."""
    classifier, _val = trained
    rng = np.random.default_rng(5)
    drawings = []
    for _ in range(6):  # lopsided scribbles, wider than tall: framing then pads both sides alike
        drawing = np.full((48, 96, 3), 255, np.uint8)
        cv2.line(drawing, (0, 40), (95, 40), (0, 0, 0), 2)
        for _ in range(4):
            (x0, x1), (y0, y1) = rng.integers(0, 96, 2), rng.integers(0, 40, 2)
            cv2.line(drawing, (int(x0), int(y0)), (int(x1), int(y1)), (0, 0, 0), 2)
        cv2.circle(drawing, (int(rng.integers(10, 40)), 20), 4, (220, 30, 30), -1)
        drawings.append(drawing)
    mirrored = [np.ascontiguousarray(d[:, ::-1]) for d in drawings]
    assert not np.allclose(drawings[0], mirrored[0])
    np.testing.assert_allclose(predict_proba(classifier, drawings), predict_proba(classifier, mirrored), atol=1e-5)


def test_save_load_round_trip_gives_identical_predictions(trained, tmp_path):
    classifier, val = trained
    path = save_classifier(tmp_path / "classifier.pt", classifier, {"val_accuracy": 0.5})
    loaded = load_classifier(path)
    assert loaded.categories == list(SHAPES) and not loaded.training
    assert loaded.config() == classifier.config()
    sketches = [eval_sketch(p, 0, hint_options(HINTS)) for p in val.products]
    np.testing.assert_array_equal(predict_proba(loaded, sketches), predict_proba(classifier, sketches))


def test_predict_category_names_the_category_of_any_drawing():
    torch.manual_seed(0)
    classifier = SketchClassifier(SHAPES, **TINY).eval()
    drawing = np.full((300, 200, 3), 255, np.uint8)  # not square, not the model size
    cv2.circle(drawing, (100, 150), 60, (0, 0, 0), 3)
    cv2.circle(drawing, (100, 150), 8, (220, 30, 30), -1)
    category, probabilities = predict_category(classifier, drawing)
    assert category in SHAPES and set(probabilities) == set(SHAPES)
    assert probabilities[category] == max(probabilities.values())
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert predict_category(classifier, drawing) == (category, probabilities)


def test_classifier_refuses_fewer_than_two_distinct_categories():
    with pytest.raises(ValueError, match="2 distinct"):
        SketchClassifier(["top"])
    with pytest.raises(ValueError, match="2 distinct"):
        SketchClassifier(["top", "top"])


def test_accuracy_report_counts_rows_true_columns_predicted():
    report = accuracy_report(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]), ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["per_category"] == {"a": 0.5, "b": pytest.approx(2 / 3), "c": None}
    assert report["confusion_matrix"]["matrix"] == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    assert report["n"] == 5


# --- data folder and stage --------------------------------------------------------------------

def make_data_dir(root: Path, per_class: int = 6, test_per_class: int = 0) -> Path:
    """A data folder as the DVC stages leave it: 2 of every 3 products train, one val, then
    `test_per_class` more in test; plus a product of a category that is not in params (it must be
    ignored)."""
    rows = []
    for kind, category in enumerate((*SHAPES, "sock")):
        for seed in range(per_class + test_per_class if category != "sock" else 1):
            product = shape_product(kind % len(SHAPES), seed)
            for folder, image in (("raw", product.photo[..., ::-1]), ("masks", product.mask),
                                  ("edges", product.edges)):
                (root / folder / category).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / folder / category / f"{product.id}.png"), image)
            rows.append({"id": product.id, "category": category, "image": f"raw/{category}/{product.id}.png",
                         "mask": f"masks/{category}/{product.id}.png", "isolation": "ok",
                         "split": "test" if seed >= per_class else "val" if seed % 3 == 2 else "train"})
    write_manifest(root / "manifest.csv", rows)
    return root


def test_load_labelled_pairs_products_with_their_category(tmp_path):
    data = make_data_dir(tmp_path / "data", per_class=3)
    train = load_labelled(data, "train", 32, SHAPES)
    assert [SHAPES[label] for label in train.labels] == ["hat", "hat", "top", "top", "skirt", "skirt"]
    assert all(p.id.startswith(SHAPES[label]) for p, label in zip(train.products, train.labels))
    assert train.products[0].photo.shape == (32, 32, 3)
    assert len(load_labelled(data, "val", 32, SHAPES).products) == 3
    with pytest.raises(ValueError, match="no 'train' products"):
        load_labelled(data, "train", 32, ["coat", "boot"])


def load_stage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_classifier_stage", STAGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stage_params(**classifier) -> dict:
    """The repository's params for the three shapes, with tiny classifier settings."""
    return deep_merge(load_params(ROOT / "params.yaml"), {
        "categories": list(SHAPES), "hints": HINTS,
        "classifier": {**TINY, "load_size": LOAD, "epochs": 2, "batch_size": 6, **classifier}})


def test_stage_help_and_unknown_or_missing_param_keys(tmp_path, capsys):
    stage = load_stage()
    with pytest.raises(SystemExit) as exit_info:
        stage.main(["--help"])
    assert exit_info.value.code == 0 and "reports/classifier.json" in capsys.readouterr().out
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(stage_params(epoch=3)))
    assert stage.main(["--params", str(params)]) == 2
    assert "unknown key 'classifier.epoch'" in capsys.readouterr().err
    missing = stage_params()
    del missing["classifier"]["doodle_share"]  # params.yaml holds the value; no default in code
    params.write_text(yaml.safe_dump(missing))
    assert stage.main(["--params", str(params)]) == 2
    assert "missing classifier.doodle_share" in capsys.readouterr().err


@pytest.mark.slow
def test_stage_trains_reports_and_registers_the_champion(tmp_path, monkeypatch):
    make_data_dir(tmp_path / "data", test_per_class=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(stage_params()))
    monkeypatch.chdir(tmp_path)
    with isolated_mlflow():
        assert load_stage().main([]) == 0
        client = configure(tmp_path)
        report = json.loads((tmp_path / "reports" / "classifier.json").read_text())
        assert 0.0 <= report["accuracy"] <= 1.0 and report["n_val"] == 6 and report["n_train"] == 12
        assert report["n_test"] == 6 and 0.0 <= report["test_accuracy"] <= 1.0
        assert report["real_doodle_accuracy"] is None and report["real_doodles"] is None  # no ../shared here
        decision = json.loads((tmp_path / "reports" / "promote" / "sketch-classifier.json").read_text())
        assert decision["promoted"] and decision["reason"] == "no champion yet" and decision["version"] == 1
        assert decision["test"]["candidate"]["accuracy"] == pytest.approx(report["test_accuracy"])
        assert set(report["per_category"]) == set(SHAPES)
        assert report["confusion_matrix"]["labels"] == list(SHAPES)
        assert report["registered_version"] == 1 and report["champion"] is True
        assert client.get_run(report["run_id"]).data.metrics["val_accuracy"] == pytest.approx(
            report["accuracy"], abs=1e-4)
        assert int(registry.champion(client).version) == 1
        saved = load_classifier(tmp_path / "models" / "classifier.pt")
        assert saved.categories == list(SHAPES) and saved.config()["image_size"] == TINY["image_size"]


# --- registry ---------------------------------------------------------------------------------

def register(client, experiment: str, classifier: SketchClassifier, accuracy: float, tmp: Path, name: str):
    path = save_classifier(tmp / f"c-{name}.pt", classifier)
    with mlflow.start_run(experiment_id=experiment):
        return registry.log_and_register(path, accuracy, client, {"categories": ",".join(SHAPES)})


@pytest.mark.slow
def test_the_gate_keeps_the_better_classifier_on_the_test_sketches(trained, tmp_path):
    """Registry + gate: the first is champion, an untrained one and an identical copy are refused
    (per-sketch correctness on the same test sketches), and load_champion gives the champion."""
    good, _val = trained
    torch.manual_seed(0)
    untrained = SketchClassifier(SHAPES, **TINY).eval()
    data = make_data_dir(tmp_path / "data", per_class=3, test_per_class=8)
    params = stage_params()
    rule = gate_rule(params, CLASSIFIER)
    drawing = eval_sketch(shape_product(1, 7), 0, hint_options(HINTS))
    with isolated_mlflow():
        client = configure(tmp_path)
        experiment = get_or_create_experiment("classifier")
        assert registry.champion(client) is None and registry.load_champion(client) is None

        def gate(version):
            return gate_version(client, registry.MODEL_NAME, version.version, rule,
                                lambda mv: classifier_evidence(registry.load_version(client, mv), data, params))

        v1 = register(client, experiment, good, 0.8, tmp_path, "good")
        first = gate(v1)
        assert first.promoted and first.decision.reason == "no champion yet" and first.n_test == 24
        assert first.candidate_test["accuracy"] >= 0.6  # chance is 1/3
        assert predict_category(registry.load_champion(client), drawing) == predict_category(good, drawing)

        v2 = register(client, experiment, untrained, 0.9, tmp_path, "untrained")  # a better val tag does not count
        worse = gate(v2)
        assert not worse.promoted and worse.decision.intervals["accuracy"].high < 0
        assert client.get_model_version(registry.MODEL_NAME, v2.version).tags["promotion"] == "rejected"

        v3 = register(client, experiment, good, 0.8, tmp_path, "copy")  # a tie keeps the champion
        tie = gate(v3)
        assert not tie.promoted and tie.decision.intervals["accuracy"].gain == 0.0
        assert registry.champion(client).version == v1.version
        np.testing.assert_array_equal(predict_proba(registry.load_champion(client), [drawing]),
                                      predict_proba(good, [drawing]))
