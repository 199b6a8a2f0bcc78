"""Train the sketch classifier on shopper-like drawings, and score it on fixed val sketches.

Every epoch redraws each training product the way shoppers draw (`sketch_view`: pen habits,
framing, simulated colour hints), so the classifier learns garment shapes from hand-drawn-like
lines instead of memorising clean edge maps. Validation uses each product's fixed sketch
(`eval_sketch`: plain edge map, hints drawn from (seed, id)), so accuracies compare across runs;
the val split is only reported, never used to pick weights. Every training draw comes from
(seed, epoch, index), so a run is reproducible.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from sketch2fashion.catalog.embedder import prepare_batch, sketch_to_rgb
from sketch2fashion.catalog.embedder_training import ProductImages, eval_doodle, eval_sketch, load_products, sketch_view
from sketch2fashion.classifier.model import (
    DEFAULT_BLOCKS,
    DEFAULT_DIM,
    DEFAULT_SIZE,
    DEFAULT_WIDTH,
    SketchClassifier,
    predict_proba,
)
from sketch2fashion.classifier.shapes import TEMPLATES, garment_shape
from sketch2fashion.colorizer.augment import SketchAugment
from sketch2fashion.colorizer.dataset import MANIFEST_NAME, hint_options
from sketch2fashion.colorizer.doodle import TRAIN_STYLE, synthesise_doodle
from sketch2fashion.data.dev_doodles import available, load_dev_doodles
from sketch2fashion.data.manifest import ISOLATION_FAILED, read_manifest
from sketch2fashion.imaging.hints import simulate_hints
from sketch2fashion.models.device import pick_device

TRAIN_STREAM = 21
"""An RNG stream of its own, so the classifier never replays the colorizer's or embedder's draws."""

TEMPLATE_STYLE = replace(TRAIN_STYLE, p_gap=0.6, gap=(0.02, 0.25))
"""Template garments are drawn like products, but left open more often and wider (a whole hem)."""

Log = Callable[[dict[str, float]], None]


@dataclass(frozen=True)
class LabelledProducts:
    """Products and their category index (`labels[i]` indexes `categories`)."""

    products: list[ProductImages]
    labels: np.ndarray
    categories: list[str]

    def __post_init__(self) -> None:
        if len(self.products) != len(self.labels):
            raise ValueError(f"{len(self.products)} products but {len(self.labels)} labels")


def load_labelled(data_dir: str | Path, split: str, size: int, categories: Sequence[str]) -> LabelledProducts:
    """`load_products` of `split` with their categories; rows of other categories are dropped.

    `load_products` keeps the manifest's order of usable rows, so rows and products are paired
    by position; the ids are compared, so a change there fails loudly instead of mislabelling.
    """
    categories = [str(c) for c in categories]
    rows = [r for r in read_manifest(Path(data_dir) / MANIFEST_NAME)
            if r["split"] == split and r["isolation"] != ISOLATION_FAILED]
    products = load_products(data_dir, split, size)
    if [r["id"] for r in rows] != [p.id for p in products]:
        raise RuntimeError("load_products no longer returns the manifest's usable rows in order")
    keep = [i for i, r in enumerate(rows) if r["category"] in categories]
    if not keep:
        raise ValueError(f"{data_dir}: no {split!r} products of categories {categories}")
    labels = np.array([categories.index(rows[i]["category"]) for i in keep], np.int64)
    return LabelledProducts([products[i] for i in keep], labels, categories)


def template_view(category: str, rng: np.random.Generator, hints: Mapping[str, Any], size: int) -> np.ndarray:
    """A template garment of `category` (classifier/shapes.py) drawn as a doodle, hints on it."""
    shape = garment_shape(category, rng, size)
    doodle = synthesise_doodle(shape.photo, shape.mask, shape.edges, rng, TEMPLATE_STYLE)
    return sketch_to_rgb(doodle.edges, simulate_hints(doodle.photo, doodle.mask, rng, **hints))


def training_view(data: LabelledProducts, index: int, rng: np.random.Generator, augment: SketchAugment,
                  hints: Mapping[str, Any], doodle_share: float, template_share: float) -> np.ndarray:
    """Product `index` drawn like a shopper, or (with probability `template_share`, where its
    category has a template) a template garment of its category: same label either way."""
    category = data.categories[int(data.labels[index])]
    if category in TEMPLATES and rng.random() < template_share:
        return template_view(category, rng, hints, data.products[index].photo.shape[0])
    return sketch_view(data.products[index], rng, augment, hints, doodle_share)


def train_classifier(data: LabelledProducts, *, epochs: int = 15, batch_size: int = 32,
                     lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0,
                     image_size: int = DEFAULT_SIZE, width: int = DEFAULT_WIDTH,
                     blocks: int = DEFAULT_BLOCKS, dim: int = DEFAULT_DIM,
                     augment: SketchAugment | None = None, hint_params: Mapping[str, Any] | None = None,
                     doodle_share: float = 0.0, template_share: float = 0.0, device: str = "cpu",
                     log: Log | None = None) -> tuple[SketchClassifier, list[dict[str, float]]]:
    """Cross-entropy on freshly drawn sketches; returns the classifier (eval mode) and epoch stats.

    The learning rate follows a cosine decay to zero, so the last epoch's weights (the ones kept)
    are not a snapshot of a noisy high-lr step. `log` receives each epoch's stats as they come.
    """
    if len(data.products) < 2:
        raise ValueError("training needs at least 2 products")
    torch_device = pick_device(device)
    augment = augment or SketchAugment()
    hints = hint_options(hint_params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        classifier = SketchClassifier(data.categories, image_size=image_size, width=width,
                                      blocks=blocks, dim=dim).to(torch_device)
    batch = max(2, min(int(batch_size), len(data.products)))  # BatchNorm needs 2 per batch
    steps = max(1, int(epochs) * (len(data.products) // batch))
    optimiser = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    labels = torch.from_numpy(data.labels)
    history: list[dict[str, float]] = []
    classifier.train()
    for epoch in range(int(epochs)):
        started = time.perf_counter()
        order = np.random.default_rng([seed, TRAIN_STREAM, epoch]).permutation(len(data.products))
        losses, correct, seen = [], 0, 0
        for start in range(0, len(order) - batch + 1, batch):  # drop the short last batch
            indices = order[start:start + batch]
            views = [training_view(data, int(i), np.random.default_rng([seed, TRAIN_STREAM, epoch, int(i)]),
                                   augment, hints, doodle_share, template_share) for i in indices]
            target = labels[indices].to(torch_device)
            logits = classifier(prepare_batch(views, image_size).to(torch_device))
            loss = F.cross_entropy(logits, target)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            correct += int((logits.argmax(dim=1) == target).sum())
            seen += len(indices)
        stats = {"epoch": float(epoch + 1), "loss": float(np.mean(losses)),
                 "train_accuracy": correct / seen, "seconds": time.perf_counter() - started}
        history.append(stats)
        if log is not None:
            log(stats)
    return classifier.eval(), history


def evaluate_classifier(classifier: SketchClassifier, data: LabelledProducts, *, seed: int = 0,
                        hint_params: Mapping[str, Any] | None = None, doodles: bool = False) -> dict[str, Any]:
    """Accuracy, per-category accuracy and confusion matrix on each product's fixed sketch
    (its edge map), or with `doodles` on its fixed doodle in the evaluation style."""
    if list(data.categories) != classifier.categories:
        raise ValueError(f"classifier categories {classifier.categories} != data's {data.categories}")
    hints = hint_options(hint_params)
    draw = eval_doodle if doodles else eval_sketch
    sketches = [draw(p, seed, hints) for p in data.products]
    predicted = predict_proba(classifier, sketches).argmax(axis=1)
    return accuracy_report(data.labels, predicted, data.categories)


def evaluate_real_doodles(classifier: SketchClassifier, root: str | Path, seed: int = 0) -> dict[str, Any] | None:
    """`accuracy_report` on the real drawings in `root` (data/dev_doodles.py) whose category the
    classifier knows, plus accuracy per drawn word; None when the folder is absent or has none."""
    if not available(root):
        return None
    doodles = [d for d in load_dev_doodles(root, seed) if d.category in classifier.categories]
    if not doodles:
        return None
    predicted = predict_proba(classifier, [d.drawing for d in doodles]).argmax(axis=1)
    true = np.array([classifier.categories.index(d.category) for d in doodles])
    report = accuracy_report(true, predicted, classifier.categories)
    words = sorted({d.word for d in doodles})
    report["per_word"] = {w: float(np.mean([t == p for d, t, p in zip(doodles, true, predicted) if d.word == w]))
                          for w in words}
    return report


def accuracy_report(true: np.ndarray, predicted: np.ndarray, categories: Sequence[str]) -> dict[str, Any]:
    """{accuracy, per_category (recall; None without samples), confusion_matrix, n}.

    The confusion matrix has one row per true category and one column per predicted one.
    """
    true, predicted = np.asarray(true, np.int64), np.asarray(predicted, np.int64)
    if true.shape != predicted.shape or true.size == 0:
        raise ValueError(f"need matching non-empty label arrays, got {true.shape} and {predicted.shape}")
    k = len(categories)
    matrix = np.bincount(true * k + predicted, minlength=k * k).reshape(k, k)
    totals = matrix.sum(axis=1)
    per_category = {str(c): (float(matrix[i, i] / totals[i]) if totals[i] else None)
                    for i, c in enumerate(categories)}
    return {"accuracy": float(np.trace(matrix) / true.size), "per_category": per_category,
            "confusion_matrix": {"labels": [str(c) for c in categories], "rows": "true",
                                 "columns": "predicted", "matrix": matrix.tolist()},
            "n": int(true.size)}
