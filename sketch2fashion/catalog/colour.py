"""Colour signals of a garment photo: a Lab histogram to compare, and named dominant colours.

A shopper's hints and words ("red", "navy") are about colour, and the image embedding alone
mixes colour with shape. These descriptors look at the garment's pixels only (catalog and
generated photos are on white, so the backdrop is cut away first) and work in CIE Lab, where
distances follow how different colours look.

* `lab_histogram` + `colour_similarity`: "same colours in the same proportions", for ranking
  catalog photos against the generated photo.
* `dominant_colours`: the garment's main colours as shop colour names, so a query word "red"
  can match a product whose title says "crimson" (see `catalog.text.colour_word_match`).
"""
from __future__ import annotations

import cv2
import numpy as np

from sketch2fashion.demo import PALETTE
from sketch2fashion.imaging.isolate import clean_mask

NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    **PALETTE,
    "gray": (128, 128, 128),
    "dark gray": (72, 72, 74),
}
"""Shop colour names -> sRGB: the demo palette (names used in titles and feeds) plus the
mid and dark greys it lacks, so a charcoal garment is not forced into "black" or "light gray"."""

WHITE_DELTA_E = 12.0
"""Pixels closer than this (Delta E) to pure white are backdrop."""
MIN_GARMENT_SHARE = 0.005
"""A mask smaller than this share of the frame is no garment; the whole frame is used instead."""
LIGHTNESS_WEIGHT = 0.5
"""Lightness counts half when naming colours: shading darkens a red sleeve, it stays red."""
MAX_SAMPLES = 20000
"""Garment pixels looked at when naming colours (a fixed, evenly spaced subsample)."""
AB_RANGE = (-100.0, 100.0)
"""Range of Lab a* and b* covered by the histogram (sRGB reaches about -108..98)."""


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab of uint8 RGB as float32 (L 0..100, a/b about -100..100): distances are Delta E."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8).astype(np.float32) / 255.0,
                        cv2.COLOR_RGB2Lab)


NAMED_LAB: np.ndarray = to_lab(np.array([list(NAMED_COLOURS.values())], np.uint8))[0]
"""Lab of NAMED_COLOURS, row i for the i-th name."""
COLOUR_NAMES: tuple[str, ...] = tuple(NAMED_COLOURS)


def garment_mask_from_photo(rgb: np.ndarray, *, white_delta_e: float = WHITE_DELTA_E) -> np.ndarray:
    """Mask (uint8 0/255) of what is not white backdrop: speckle dropped, small holes filled.

    For catalog and generated photos, which are on white. A soft contact shadow next to the
    garment may be included (it is close to neutral grey and small); a garment as white as the
    backdrop keeps only its shading. When nothing is found the whole frame is returned, so the
    descriptors still describe something rather than nothing.
    """
    distance = np.linalg.norm(to_lab(rgb) - np.float32([100.0, 0.0, 0.0]), axis=2)
    mask = clean_mask(np.where(distance > white_delta_e, 255, 0).astype(np.uint8))
    if np.count_nonzero(mask) < MIN_GARMENT_SHARE * mask.size:
        return np.full(mask.shape, 255, np.uint8)
    return mask


def _garment_lab(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """N x 3 Lab values of the garment pixels (all pixels when the mask is None or empty)."""
    lab = to_lab(rgb).reshape(-1, 3)
    if mask is None:
        return lab
    inside = (np.asarray(mask) > 0).reshape(-1)
    return lab[inside] if inside.any() else lab


def _soft_bins(values: np.ndarray, low: float, high: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per value, the two neighbouring bin indices (N x 2) and their linear weights (N x 2).

    Soft binning: a colour on a bin boundary counts half in each, so a slight shade change
    moves weight smoothly instead of jumping to another bin.
    """
    position = (np.clip(values, low, high) - low) / (high - low) * bins - 0.5
    lower = np.floor(position)
    upper_weight = position - lower
    index = np.stack([lower, lower + 1], axis=1).astype(np.int64)
    weight = np.stack([1.0 - upper_weight, upper_weight], axis=1)
    weight[index < 0] = 0.0
    weight[index >= bins] = 0.0
    return np.clip(index, 0, bins - 1), weight


def lab_histogram(rgb: np.ndarray, mask: np.ndarray | None = None,
                  bins: tuple[int, int, int] = (8, 12, 12), *, norm: str = "l1") -> np.ndarray:
    """Soft-binned Lab histogram of the garment pixels, flattened float32, L1- or L2-normalised.

    Coarse in lightness (shading), finer in a*/b* (hue and chroma). Bins are clipped at the
    ends, so their weights per pixel still sum to one. L1 suits `colour_similarity`.
    """
    if norm not in ("l1", "l2"):
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    lab = _garment_lab(rgb, mask)
    n_l, n_a, n_b = (int(b) for b in bins)
    ranges = ((0.0, 100.0, n_l), (*AB_RANGE, n_a), (*AB_RANGE, n_b))
    axes = [_soft_bins(lab[:, i], low, high, n) for i, (low, high, n) in enumerate(ranges)]
    hist = np.zeros(n_l * n_a * n_b, np.float64)
    for corner in np.ndindex(2, 2, 2):
        (il, wl), (ia, wa), (ib, wb) = ((axes[k][0][:, c], axes[k][1][:, c])
                                        for k, c in enumerate(corner))
        hist += np.bincount((il * n_a + ia) * n_b + ib, weights=wl * wa * wb, minlength=hist.size)
    scale = hist.sum() if norm == "l1" else np.sqrt((hist ** 2).sum())
    return (hist / scale if scale > 0 else hist).astype(np.float32)


def colour_similarity(h1: np.ndarray, h2: np.ndarray, method: str = "hellinger") -> np.ndarray | float:
    """Similarity in [0, 1] of L1-normalised histograms: 1 = same colour distribution.

    "hellinger": the Bhattacharyya coefficient sum(sqrt(p q)) = 1 - Hellinger distance^2,
    gentle on small bins; "intersection": sum(min(p, q)), the shared share of pixels.
    `h2` may be one histogram or a matrix of them (one per row; the result is then a vector).
    """
    p, q = np.asarray(h1, np.float64), np.asarray(h2, np.float64)
    if method == "hellinger":
        result = np.sqrt(np.clip(p, 0, None) * np.clip(q, 0, None)).sum(axis=-1)
    elif method == "intersection":
        result = np.minimum(p, q).sum(axis=-1)
    else:
        raise ValueError(f"method must be 'hellinger' or 'intersection', got {method!r}")
    return float(result) if np.ndim(result) == 0 else result.astype(np.float32)


def nearest_colour_names(lab: np.ndarray, lightness_weight: float = LIGHTNESS_WEIGHT) -> np.ndarray:
    """Index into COLOUR_NAMES of the nearest named colour per Lab row (lightness down-weighted)."""
    weights = np.float32([lightness_weight, 1.0, 1.0])
    diff = (lab[:, None, :] - NAMED_LAB[None, :, :]) * weights
    return np.argmin((diff ** 2).sum(axis=2), axis=1)


def dominant_colours(rgb: np.ndarray, mask: np.ndarray | None = None, k: int = 3,
                     *, min_fraction: float = 0.02) -> list[tuple[str, float]]:
    """The garment's `k` main colours as (name, share of garment pixels), largest first.

    Each pixel (median-filtered first, so fabric grain and JPEG noise do not vote) takes its
    nearest name in NAMED_COLOURS; shares below `min_fraction` (seams, stitching) are dropped.
    """
    smooth = cv2.medianBlur(np.ascontiguousarray(rgb, dtype=np.uint8), 3)
    lab = _garment_lab(smooth, mask)
    step = max(1, len(lab) // MAX_SAMPLES)
    counts = np.bincount(nearest_colour_names(lab[::step]), minlength=len(COLOUR_NAMES))
    shares = counts / max(1, counts.sum())
    order = np.argsort(-shares, kind="stable")
    return [(COLOUR_NAMES[i], float(shares[i])) for i in order[:k] if shares[i] >= min_fraction]
