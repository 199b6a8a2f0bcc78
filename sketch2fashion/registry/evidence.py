"""Per-item scores on the test split, the evidence the champion gate compares (registry/gate.py).

Each function scores one model on every usable test item of the data folder, in a fixed item
order and with fixed-seed sketches and hints, so a candidate and its champion scored one after
the other are compared item by item:

- a colorizer (anything the evaluator drives, e.g. a loaded pyfunc in `PyfuncGenerator`): SSIM,
  hint Delta E and body Delta E of each test product's edge-map sketch, and SSIM and body Delta E
  of its doodle (the metrics of metrics/, per image instead of averaged);
- the sketch classifier: 1 when it names each test sketch's (and doodle's) category, else 0;
- the catalog encoder: 1 / rank of each test product's photo among all test photos, for its
  sketch and its doodle (the mean is the MRR).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sketch2fashion.data.split import TEST
from sketch2fashion.params import categories, require
from sketch2fashion.registry.gate import Evidence


def colorizer_evidence(generator: nn.Module, data_dir: str | Path, category: str,
                       params: Mapping[str, Any], *, batch_size: int = 16) -> Evidence:
    """A colorizer's per-image scores on `category`'s test sketches and doodles (CPU, as served)."""
    from sketch2fashion.colorizer.dataset import ColorizerDataset

    options = {"size": int(require(params, "image.size")), "train": False,
               "hint_params": require(params, "hints"), "seed": int(require(params, "train.seed"))}
    sketches = ColorizerDataset(data_dir, category, TEST, **options)
    doodles = ColorizerDataset(data_dir, category, TEST, doodles=True, **options)
    if sketches.ids != doodles.ids:
        raise RuntimeError("the test sketches and doodles no longer cover the same products in order")
    plain = _per_image(generator, sketches, batch_size)
    drawn = _per_image(generator, doodles, batch_size)
    return Evidence(tuple(sketches.ids), {
        "ssim": plain["ssim"], "hint_delta_e": plain["hint_delta_e"], "body_delta_e": plain["body_delta_e"],
        "doodle_ssim": drawn["ssim"], "doodle_body_delta_e": drawn["body_delta_e"]})


def _per_image(generator: nn.Module, dataset: Any, batch_size: int) -> dict[str, np.ndarray]:
    from sketch2fashion.colorizer.dataset import make_loader
    from sketch2fashion.colorizer.evaluate import inference_setup
    from sketch2fashion.metrics import ssim
    from sketch2fashion.metrics.hint_fidelity import body_delta_e_of_inputs, hint_delta_e_of_inputs
    from sketch2fashion.models.inputs import to_images, unpack_sketches

    scores: dict[str, list[float]] = {"ssim": [], "hint_delta_e": [], "body_delta_e": []}
    device = torch.device("cpu")
    with inference_setup(generator, device, autocast=False) as (_, memory_format):
        for batch in make_loader(dataset, batch_size, shuffle=False):
            inputs = unpack_sketches(batch["sketch"])
            fake = to_images(generator(inputs.to(device, memory_format=memory_format)))
            real = np.ascontiguousarray(batch["photo"].permute(0, 2, 3, 1).numpy())
            scores["ssim"] += [float(v) for v in ssim(fake, real).per_image]
            for i in range(len(fake)):  # one value per image; NaN where it has none (no hint, no body)
                hint = hint_delta_e_of_inputs(fake[i:i + 1], inputs[i:i + 1])
                body = body_delta_e_of_inputs(fake[i:i + 1], inputs[i:i + 1], batch["body"][i:i + 1])
                scores["hint_delta_e"].append(hint[0] if hint else float("nan"))
                scores["body_delta_e"].append(body[0] if body else float("nan"))
    return {k: np.asarray(v, np.float64) for k, v in scores.items()}


def classifier_evidence(classifier: Any, data_dir: str | Path, params: Mapping[str, Any]) -> Evidence:
    """1.0 where the classifier names a test sketch's category (then its doodle's), else 0.0.

    Compared by name, so a champion trained on other categories (one added since) is scored on
    the same sketches: it is simply wrong on the new category's.
    """
    from sketch2fashion.catalog.embedder_training import eval_doodle, eval_sketch
    from sketch2fashion.classifier.model import predict_proba
    from sketch2fashion.classifier.training import load_labelled
    from sketch2fashion.colorizer.dataset import hint_options

    names = categories(dict(params))
    data = load_labelled(data_dir, TEST, int(require(params, "classifier.load_size")), names)
    seed, hints = int(require(params, "classifier.seed")), hint_options(require(params, "hints"))
    truth = np.asarray([names[label] for label in data.labels])
    scores = {}
    for key, draw in (("accuracy", eval_sketch), ("doodle_accuracy", eval_doodle)):
        answers = predict_proba(classifier, [draw(p, seed, hints) for p in data.products]).argmax(axis=1)
        scores[key] = (np.asarray(classifier.categories)[answers] == truth).astype(np.float64)
    return Evidence(tuple(p.id for p in data.products), scores)


def encoder_evidence(encoder: Any, data_dir: str | Path, params: Mapping[str, Any]) -> Evidence:
    """1 / rank of each test product's photo among all test photos, for its sketch and its doodle."""
    from sketch2fashion.catalog.embedder_training import retrieval_ranks

    ids, ranks = retrieval_ranks(encoder, data_dir, TEST, seed=int(require(params, "search.encoder.seed")),
                                 hint_params=require(params, "hints"))
    return Evidence(tuple(ids), {"reciprocal_rank": 1.0 / ranks[""].astype(np.float64),
                                 "doodle_reciprocal_rank": 1.0 / ranks["doodle_"].astype(np.float64)})
