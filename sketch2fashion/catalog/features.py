"""Catalog vectors that make the fused image + colour score a single inner-product search.

A product's vector is ``[e, sqrt(h)]``: its unit photo embedding `e` and the square root of its
L1-normalised Lab histogram `h` (also a unit vector). The dot product of two square-rooted
histograms is the Bhattacharyya coefficient, `catalog.colour.colour_similarity`'s "hellinger"
score. So a query ``[w_s e_sketch + w_p e_photo, w_h sqrt(h_hints) + w_c sqrt(h_photo)]`` scores

    w_s cos(sketch, product) + w_p cos(photo, product) + w_h BC(hints, product) + w_c BC(photo, product)

against every product in one ANN search. The weights live only on the query side, so one index
serves every query kind (sketch only, colour only, fused) and weights change without a rebuild.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sketch2fashion.catalog.colour import garment_mask_from_photo, lab_histogram
from sketch2fashion.imaging.hints import Hints, split_sketch
from sketch2fashion.imaging.io import fit_within

IMAGE_SIGNALS = ("sketch", "photo", "hint_colour", "photo_colour")
"""Signals that live in the vector; text signals re-rank candidates afterwards (catalog.search)."""
COLOUR_SIDE = 128


@dataclass(frozen=True)
class FeatureLayout:
    """Where each part sits in a catalog vector: embedding first, colour histogram after."""

    embedding_dim: int
    colour_bins: tuple[int, int, int]

    @property
    def colour_dim(self) -> int:
        return int(np.prod(self.colour_bins))

    @property
    def dim(self) -> int:
        return self.embedding_dim + self.colour_dim

    def to_dict(self) -> dict:
        return {"embedding_dim": self.embedding_dim, "colour_bins": list(self.colour_bins)}

    @classmethod
    def from_dict(cls, raw: Mapping) -> FeatureLayout:
        return cls(int(raw["embedding_dim"]), tuple(int(b) for b in raw["colour_bins"]))


@dataclass(frozen=True)
class QueryParts:
    """A shopper query, encoded: any part may be missing (no photo yet, no hints drawn)."""

    sketch: np.ndarray | None = None        # unit embedding of the drawing
    photo: np.ndarray | None = None         # unit embedding of the generated photo
    hint_colour: np.ndarray | None = None   # sqrt histogram of the hint pixels
    photo_colour: np.ndarray | None = None  # sqrt histogram of the photo's garment pixels


def sqrt_histogram(rgb: np.ndarray, mask: np.ndarray | None, bins: Sequence[int]) -> np.ndarray:
    """Square root of the L1 Lab histogram: a unit vector whose dot products are Bhattacharyya scores."""
    return np.sqrt(lab_histogram(rgb, mask, tuple(int(b) for b in bins), norm="l1")).astype(np.float32)


def photo_colour(rgb: np.ndarray, bins: Sequence[int]) -> np.ndarray:
    """Colour part of a photo on white (catalog or generated): its garment pixels only.

    Measured on a copy at most COLOUR_SIDE pixels across: colour proportions survive area
    averaging, and a 512 px photo would cost ~15x more for the same histogram.
    """
    small = fit_within(np.ascontiguousarray(rgb, dtype=np.uint8), COLOUR_SIDE)
    return sqrt_histogram(small, garment_mask_from_photo(small), bins)


def hint_colour(sketch_rgb: np.ndarray, bins: Sequence[int]) -> np.ndarray | None:
    """Colour part of a drawing's hints; None when the shopper drew no colour."""
    return hints_colour(split_sketch(sketch_rgb)[1], bins)


def hints_colour(hints: Hints, bins: Sequence[int]) -> np.ndarray | None:
    """Colour part of hints already split from their drawing (the API sends the ones it split
    for the colorizer, so the Catalog does not split the drawing a second time)."""
    if not hints.hinted.any():
        return None
    return sqrt_histogram(hints.rgb, hints.mask, bins)


def product_vectors(embeddings: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Catalog rows ``[e, sqrt(h)]`` from unit embeddings (N x d) and sqrt histograms (N x c)."""
    if len(embeddings) != len(colours):
        raise ValueError(f"{len(embeddings)} embeddings but {len(colours)} colour descriptors")
    return np.hstack([np.asarray(embeddings, np.float32), np.asarray(colours, np.float32)])


def query_vector(layout: FeatureLayout, parts: QueryParts, weights: Mapping[str, float]) -> np.ndarray | None:
    """The weighted query (see module doc); None when no weighted part is present (nothing to rank by)."""
    vector = np.zeros(layout.dim, np.float32)
    used = False
    for name in IMAGE_SIGNALS:
        value, weight = getattr(parts, name), float(weights.get(name, 0.0))
        if value is None or weight == 0.0:
            continue
        target = slice(0, layout.embedding_dim) if name in ("sketch", "photo") else slice(layout.embedding_dim, layout.dim)
        if value.shape != (target.stop - target.start,):
            raise ValueError(f"{name} part has shape {value.shape}, layout expects {target.stop - target.start}")
        vector[target] += np.float32(weight) * value
        used = True
    return vector if used and np.any(vector) else None
