"""Train the shared image encoder contrastively: a product's sketch and its photo embed together.

Each training product gives three views per step:

* a sketch: its edge map redrawn the way shoppers draw (`SketchAugment`) or, for a share
  `doodle_share`, a quick doodle of its outline (colorizer/doodle.py), usually with simulated
  colour hints painted on, as the search will receive it;
* two photos: the product photo under two light augmentations (framing, flip, a little
  brightness/contrast/saturation on the garment only, so the backdrop stays white).

The loss is symmetric InfoNCE (CLIP): sketch <-> photo pairs pull a drawing to its product, and
photo <-> photo pairs (weighted by `photo_pair_weight`) make the encoder robust to the
differences between a generated photo and a catalog shot. Other products in the batch are
the negatives. Every random draw comes from (seed, epoch, index), so a run is reproducible.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sketch2fashion.catalog.embedder import ImageEncoder, embed_images, prepare_batch, sketch_to_rgb
from sketch2fashion.colorizer.augment import SketchAugment
from sketch2fashion.colorizer.doodle import EVAL_STYLE, TRAIN_STYLE, DoodleStyle, synthesise_doodle
from sketch2fashion.colorizer.dataset import MANIFEST_NAME, fit_size, hint_options, id_key, read_grey, read_rgb
from sketch2fashion.data.manifest import ISOLATION_FAILED, read_manifest
from sketch2fashion.imaging.hints import simulate_hints
from sketch2fashion.models.device import pick_device

TRAIN_STREAM = 11
EVAL_STREAM = 12
DOODLE_EVAL_STREAM = 13
"""RNG streams of their own, so the embedder never replays the colorizer's draws."""

PHOTO_AUGMENT = SketchAugment(p_flip=0.5, max_rotation=6.0, scale_range=(0.8, 1.1), max_shift=0.08)
"""Photo framing: wider zoom than for sketches (crop/scale), same mirror and small rotation."""

Log = Callable[[dict[str, float]], None]


@dataclass(frozen=True)
class ProductImages:
    """One product's photo (RGB), mask (0/255) and edge map (0 ink, 255 paper), all size x size."""

    id: str
    photo: np.ndarray
    mask: np.ndarray
    edges: np.ndarray


def load_products(data_dir: str | Path, split: str, size: int, per_category: int | None = None) -> list[ProductImages]:
    """Every usable product of `split` (all categories) from the data folder, resized once; with
    `per_category`, at most that many of each category (the first by id, so the same ones each run).

    Kept in memory: a few hundred products at 128 px are tens of MB, and re-reading 512 px
    PNGs every epoch would cost more than the training step.
    """
    data_dir = Path(data_dir)
    rows = [r for r in read_manifest(data_dir / MANIFEST_NAME)
            if r["split"] == split and r["isolation"] != ISOLATION_FAILED]
    if not rows:
        raise ValueError(f"{data_dir / MANIFEST_NAME}: no usable {split!r} rows")
    if per_category is not None:
        by_category: dict[str, list[dict]] = {}
        for row in sorted(rows, key=lambda r: r["id"]):
            by_category.setdefault(row["category"], []).append(row)
        rows = [row for group in by_category.values() for row in group[:per_category]]
    products = []
    for row in rows:
        photo = read_rgb(data_dir / row["image"])
        mask = read_grey(data_dir / row["mask"], "ingest")
        edges = read_grey(data_dir / "edges" / row["category"] / f"{row['id']}.png", "edges")
        photo, mask, edges = fit_size(photo, mask, edges, size)
        products.append(ProductImages(row["id"], photo, np.where(mask > 127, 255, 0).astype(np.uint8), edges))
    return products


def jitter_colours(photo: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                   strength: float = 0.1) -> np.ndarray:
    """Brightness, contrast and saturation changed by up to +-`strength`, on the garment only.

    Light on purpose: colour is part of what a shopper searches for (their hints say "red"),
    so the encoder must not learn to ignore it; the white backdrop stays white.
    """
    brightness, contrast, saturation = 1.0 + rng.uniform(-strength, strength, size=3)
    image = photo.astype(np.float32)
    grey = image @ np.float32([0.299, 0.587, 0.114])
    image = grey[..., None] + saturation * (image - grey[..., None])
    inside = mask > 0
    mean = float(grey[inside].mean()) if inside.any() else 127.5
    image = (mean + contrast * (image - mean)) * brightness
    out = np.where(inside[..., None], image, photo.astype(np.float32))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def photo_view(product: ProductImages, rng: np.random.Generator) -> np.ndarray:
    """A product photo as a catalog shot or a generated photo might frame and light it."""
    transform = PHOTO_AUGMENT.geometric(rng, product.photo.shape[0])
    return jitter_colours(transform.photo(product.photo), transform.mask(product.mask), rng)


def sketch_view(product: ProductImages, rng: np.random.Generator, augment: SketchAugment,
                hints: Mapping[str, Any], doodle_share: float = 0.0,
                doodle_style: DoodleStyle = TRAIN_STYLE) -> np.ndarray:
    """The product drawn like a shopper: a quick doodle (with probability `doodle_share`) or its
    edge map with pen habits and framing; then hints from the photo as drawn."""
    if rng.random() < doodle_share:
        doodle = synthesise_doodle(product.photo, product.mask, product.edges, rng, doodle_style)
        return sketch_to_rgb(doodle.edges, simulate_hints(doodle.photo, doodle.mask, rng, **hints))
    photo, mask, edges = augment.geometric(rng, product.photo.shape[0]).apply(
        product.photo, product.mask, product.edges)
    edges = augment.sketch(edges, mask, rng)
    return sketch_to_rgb(edges, simulate_hints(photo, mask, rng, **hints))


def eval_sketch(product: ProductImages, seed: int, hints: Mapping[str, Any]) -> np.ndarray:
    """The fixed query sketch of a product: plain edge map, hints drawn from (seed, id)."""
    rng = np.random.default_rng([seed, EVAL_STREAM, id_key(product.id)])
    return sketch_to_rgb(product.edges, simulate_hints(product.photo, product.mask, rng, **hints))


def eval_doodle(product: ProductImages, seed: int, hints: Mapping[str, Any]) -> np.ndarray:
    """The fixed doodle query of a product: drawn in the evaluation style (not the training
    one) from (seed, id), with hints from the photo as drawn."""
    rng = np.random.default_rng([seed, DOODLE_EVAL_STREAM, id_key(product.id)])
    doodle = synthesise_doodle(product.photo, product.mask, product.edges, rng, EVAL_STYLE)
    return sketch_to_rgb(doodle.edges, simulate_hints(doodle.photo, doodle.mask, rng, **hints))


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE over a batch of matched pairs (row i of `a` belongs with row i of `b`).

    The temperature is learnable CLIP-style (a log scale, clamped so logits stay <= 100) or
    fixed with `learn_temperature=False`.
    """

    def __init__(self, temperature: float = 0.07, learn_temperature: bool = True) -> None:
        super().__init__()
        log_scale = torch.tensor(float(np.log(1.0 / temperature)))
        self.log_scale = nn.Parameter(log_scale, requires_grad=bool(learn_temperature))

    @property
    def temperature(self) -> float:
        return float(1.0 / self.log_scale.detach().clamp(max=np.log(100.0)).exp())

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        logits = a @ b.t() * self.log_scale.clamp(max=np.log(100.0)).exp()
        target = torch.arange(len(a), device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def _batch_views(products: list[ProductImages], indices: np.ndarray, seed: int, epoch: int,
                 augment: SketchAugment, hints: Mapping[str, Any], size: int,
                 doodle_share: float = 0.0) -> torch.Tensor:
    """3B x 3 x size x size: B sketches, then B photos, then B second photos."""
    sketches, photos, others = [], [], []
    for index in indices:
        rng = np.random.default_rng([seed, TRAIN_STREAM, epoch, int(index)])
        product = products[int(index)]
        sketches.append(sketch_view(product, rng, augment, hints, doodle_share))
        photos.append(photo_view(product, rng))
        others.append(photo_view(product, rng))
    return prepare_batch(sketches + photos + others, size)


def train_embedder(data_dir: str | Path, *, epochs: int = 20, batch_size: int = 32,
                   dim: int = 128, size: int = 128, lr: float = 1e-3, seed: int = 0,
                   device: str = "cpu", log: Log | None = None, width: int = 32,
                   temperature: float = 0.07, learn_temperature: bool = True,
                   photo_pair_weight: float = 0.5, weight_decay: float = 1e-4,
                   augment: SketchAugment | None = None,
                   hint_params: Mapping[str, Any] | None = None,
                   split: str = "train", doodle_share: float = 0.0) -> tuple[ImageEncoder, list[dict[str, float]]]:
    """Train an encoder on `split` of the data folder; returns it (eval mode) and per-epoch stats.

    `log`, when given, receives each epoch's stats (epoch, loss, temperature, seconds) as they
    come, e.g. to print them or send them to MLflow. `hint_params` is params.yaml `hints`.
    """
    torch_device = pick_device(device)
    products = load_products(data_dir, split, size)
    if len(products) < 2:
        raise ValueError("contrastive training needs at least 2 products (others are the negatives)")
    augment = augment or SketchAugment()
    hints = hint_options(hint_params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        encoder = ImageEncoder(dim, image_size=size, width=width).to(torch_device)
    loss_fn = ContrastiveLoss(temperature, learn_temperature).to(torch_device)
    optimiser = torch.optim.AdamW([*encoder.parameters(), *loss_fn.parameters()], lr=lr,
                                  weight_decay=weight_decay)
    batch = max(2, min(int(batch_size), len(products)))
    history: list[dict[str, float]] = []
    encoder.train()
    for epoch in range(int(epochs)):
        started = time.perf_counter()
        order = np.random.default_rng([seed, TRAIN_STREAM, epoch]).permutation(len(products))
        losses = []
        for start in range(0, len(order) - batch + 1, batch):  # drop the short last batch
            views = _batch_views(products, order[start:start + batch], seed, epoch, augment,
                                 hints, size, doodle_share).to(torch_device)
            sketch, photo, other = encoder(views).split(batch)
            loss = loss_fn(sketch, photo) + photo_pair_weight * loss_fn(photo, other)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        stats = {"epoch": float(epoch + 1), "loss": float(np.mean(losses)),
                 "temperature": loss_fn.temperature, "seconds": time.perf_counter() - started}
        history.append(stats)
        if log is not None:
            log(stats)
    return encoder.eval(), history


def query_ranks(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """The rank of each query's true match (gallery item i for query i) among all gallery items.

    Ties count against the query (its rank is 1 + the number of items scoring at least as
    high), so a constant encoder scores the chance level, not perfect.
    """
    similarity = queries @ gallery.T
    true = np.diag(similarity)
    others = similarity >= true[:, None]
    np.fill_diagonal(others, False)
    return 1 + others.sum(axis=1)


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """acc@1, acc@10 and MRR of the ranks of true matches."""
    return {"sketch_to_photo_acc@1": float(np.mean(ranks <= 1)),
            "acc@10": float(np.mean(ranks <= 10)),
            "mrr": float(np.mean(1.0 / ranks))}


def retrieval_metrics(queries: np.ndarray, gallery: np.ndarray) -> dict[str, float]:
    """acc@1, acc@10 and MRR when query i's true match is gallery item i (unit vectors)."""
    return rank_metrics(query_ranks(queries, gallery))


def retrieval_ranks(encoder: ImageEncoder, data_dir: str | Path, split: str = "val", *,
                    seed: int = 0, hint_params: Mapping[str, Any] | None = None,
                    batch_size: int = 64, device: str = "cpu") -> tuple[list[str], dict[str, np.ndarray]]:
    """Product ids of `split` and, per query kind ("" for the fixed sketch, "doodle_" for the fixed
    doodle), the rank of each product's own photo among all the split's photos.

    Sketches are not augmented and their hints are drawn from (seed, id), so ranks compare
    across runs and encoders; the gallery is every product photo of the split.
    """
    products = load_products(data_dir, split, encoder.image_size)
    hints = hint_options(hint_params)
    gallery = embed_images(encoder, [p.photo for p in products], batch_size, device)
    ranks = {}
    for prefix, draw in (("", eval_sketch), ("doodle_", eval_doodle)):
        queries = embed_images(encoder, [draw(p, seed, hints) for p in products], batch_size, device)
        ranks[prefix] = query_ranks(queries, gallery)
    return [p.id for p in products], ranks


def evaluate_retrieval(encoder: ImageEncoder, data_dir: str | Path, split: str = "val", *,
                       seed: int = 0, hint_params: Mapping[str, Any] | None = None,
                       batch_size: int = 64, device: str = "cpu") -> dict[str, float]:
    """Sketch -> photo retrieval on `split` (`retrieval_ranks`): acc@1, acc@10 and MRR of the fixed
    sketches, then of the fixed doodles (keys prefixed `doodle_`)."""
    _ids, ranks = retrieval_ranks(encoder, data_dir, split, seed=seed, hint_params=hint_params,
                                  batch_size=batch_size, device=device)
    return {prefix + k: v for prefix, found in ranks.items() for k, v in rank_metrics(found).items()}
