"""The classifier's shape prior (classifier/shapes.py) and its real-drawing check (data/dev_doodles.py).

The templates must each draw one garment that fits the canvas, the same one for the same seed,
and carry enough of their category that a tiny classifier trained on template doodles alone
names fresh ones far above chance. The real development doodles are read from ../shared when it
is there (never copied into the repository).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sketch2fashion.catalog.embedder_training import ProductImages
from sketch2fashion.classifier.model import SketchClassifier, predict_proba
from sketch2fashion.classifier.shapes import TEMPLATES, garment_shape
from sketch2fashion.classifier.training import (
    LabelledProducts,
    evaluate_real_doodles,
    template_view,
    train_classifier,
)
from sketch2fashion.colorizer.dataset import hint_options
from sketch2fashion.data.dev_doodles import available, load_dev_doodles

ROOT = Path(__file__).resolve().parents[1]
DEV_DOODLES = ROOT.parent / "shared" / "data" / "doodles-dev"
CATEGORIES = tuple(TEMPLATES)
HINTS = {"min": 0, "max": 3}
TINY = {"image_size": 32, "width": 8, "blocks": 4, "dim": 16}


@pytest.mark.parametrize("category", CATEGORIES)
def test_each_template_draws_one_garment_inside_the_canvas(category):
    for seed in range(25):
        shape = garment_shape(category, np.random.default_rng(seed), 96)
        garment = shape.mask > 0
        share = garment.mean()
        assert 0.04 < share < 0.8, (seed, share)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(garment.astype(np.uint8), connectivity=8)
        largest = stats[1:, cv2.CC_STAT_AREA].max()
        assert largest >= 0.95 * garment.sum(), (seed, n)  # one garment, not scattered parts
        ys, xs = np.nonzero(garment)
        assert ys.min() >= 4 and xs.min() >= 4 and ys.max() <= 91 and xs.max() <= 91  # the margin holds
        assert (shape.photo[~garment] == 255).all() and shape.edges.shape == (96, 96)
    again = garment_shape(category, np.random.default_rng(3), 96)
    assert np.array_equal(again.mask, garment_shape(category, np.random.default_rng(3), 96).mask)


def test_templates_of_different_categories_differ():
    """Mean masks per category: a template family that collapsed onto another's shape fails."""
    means = {c: np.mean([garment_shape(c, np.random.default_rng(s), 48).mask > 0 for s in range(40)], axis=0)
             for c in CATEGORIES}
    for a in CATEGORIES:
        for b in CATEGORIES:
            if a < b:
                assert np.abs(means[a] - means[b]).mean() > 0.05, (a, b)


def test_unknown_category_has_no_template():
    with pytest.raises(ValueError, match="no garment template for 'sock'"):
        garment_shape("sock", np.random.default_rng(0))


def placeholder_products(per_class: int, size: int = 64) -> LabelledProducts:
    """Products whose pictures are blank: with template_share 1 only their labels are used."""
    blank = np.full((size, size, 3), 255, np.uint8)
    products = [ProductImages(f"{c}-{i}", blank, np.zeros((size, size), np.uint8), np.full((size, size), 255, np.uint8))
                for c in CATEGORIES for i in range(per_class)]
    labels = np.repeat(np.arange(len(CATEGORIES)), per_class)
    return LabelledProducts(products, labels, list(CATEGORIES))


@pytest.mark.slow
def test_templates_alone_teach_a_classifier_the_categories():
    torch.set_num_threads(1)
    classifier, history = train_classifier(placeholder_products(24), epochs=12, batch_size=16, lr=3e-3,
                                           hint_params=HINTS, template_share=1.0, **TINY)
    assert history[-1]["loss"] < history[0]["loss"]
    hints = hint_options(HINTS)
    fresh = [(k, template_view(c, np.random.default_rng([99, k, i]), hints, 64))
             for k, c in enumerate(CATEGORIES) for i in range(15)]
    predicted = predict_proba(classifier, [view for _, view in fresh]).argmax(axis=1)
    accuracy = float(np.mean(predicted == np.array([k for k, _ in fresh])))
    assert accuracy >= 0.6, accuracy  # chance is 0.25


def test_real_doodle_report_is_none_without_the_folder(tmp_path):
    classifier = SketchClassifier(CATEGORIES, **TINY).eval()
    assert not available(tmp_path)
    assert evaluate_real_doodles(classifier, tmp_path) is None
    with pytest.raises(FileNotFoundError, match="doodles-dev"):
        load_dev_doodles(tmp_path)


@pytest.mark.skipif(not available(DEV_DOODLES), reason=f"{DEV_DOODLES} is absent (../shared/data/doodles-dev)")
def test_real_doodles_are_dotted_inside_and_scored_per_word():
    doodles = load_dev_doodles(DEV_DOODLES, seed=0)
    assert len(doodles) >= 20 and {d.category for d in doodles} <= set(CATEGORIES)
    for d in doodles[:10]:
        dots = np.all(d.drawing == np.array(d.colour, np.uint8), axis=2)
        assert dots.sum() > 0 and d.body.any()
    classifier = SketchClassifier(CATEGORIES, **TINY).eval()
    report = evaluate_real_doodles(classifier, DEV_DOODLES)
    assert report["n"] == len(doodles) and set(report["per_word"]) == {d.word for d in doodles}
    assert report["accuracy"] == pytest.approx(
        np.trace(np.array(report["confusion_matrix"]["matrix"])) / report["n"])
