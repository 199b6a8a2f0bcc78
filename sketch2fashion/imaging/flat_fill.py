"""Flat colour fill: every colour hint spread over the region of the drawing it sits in.

A shopper drops three red dots in a t-shirt and means "a red t-shirt": the whole inside of the
outline red, the paper around it untouched. This is what a comic colourist's bucket fill does,
and the generator then only has to add shading and detail on top of it (models/networks.py,
`residual` output), so the hinted colour holds by construction.

Steps, all at the model's input size, in the one function training and serving share
(`prepare_fill`):
1. openings of a quick drawing are closed (`imaging.outline.close_outline`);
2. each paper region (4-connected, ink walls) that holds hints is filled, every pixel taking
   the colour of its nearest hint in that region (two colours in one region split it);
3. the rest of the garment without a hint (a sleeve behind a seam, a pocket) takes the nearest
   hint's colour at half weight: the shopper probably meant the garment in one colour;
4. where an opening too wide to close leaves the garment open to the page, the garment is its
   silhouette instead (the inside of the ink after a morphological closing wide enough to
   bridge the opening; the convex hull when even that leaks), so a hint there fills the
   garment, at half weight, not the whole page;
5. the ink lines take the colour of the fill beside them, so the garment reaches the outer edge
   of its outline (a photo has no white seam where the pen was);
6. a drawing without any hint gets a neutral light grey over its enclosed regions (or its
   silhouette), so even then the generator paints a garment rather than deciding where one is.

`weight` says how sure the fill is: 255 (a hint's own region), 128 (guessed: steps 3-4),
64 (no hint at all: step 6), 0 (nothing filled).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sketch2fashion.imaging.hints import Hints, resize_hints, split_sketch
from sketch2fashion.imaging.io import resize_square, square_pad
from sketch2fashion.imaging.outline import close_outline, ink_extent, ink_of, reachable_from_border, stroke_width

SURE = 255
GUESSED = 128
DEFAULT = 64
NEUTRAL = (200, 200, 200)
"""The colour of a garment drawn without hints: a light grey that shading reads well on."""


@dataclass(frozen=True)
class FlatFill:
    """`rgb` uint8 H x W x 3 (0 where unfilled), `weight` uint8 H x W (0, GUESSED or SURE)."""

    rgb: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class PreparedInput:
    """What the generator is fed for one drawing: closed edges, hints and their fill, plus the
    stroke ends still open when a hint's colour would leak (`leaks`), for the page's warning."""

    edges: np.ndarray
    hints: Hints
    fill: FlatFill
    open_ends: np.ndarray
    leaks: bool


def prepare_fill(edges: np.ndarray, hints: Hints) -> PreparedInput:
    """Close the drawing's openings, then fill its hints: the preprocessing shared by training
    (colorizer/dataset.py) and serving (serving/sketches.py)."""
    closed = close_outline(edges)
    fill, leaks = flat_fill(closed.edges, hints, pen=closed.pen)
    open_ends = closed.open_ends if leaks else np.zeros((0, 2), np.int64)
    return PreparedInput(closed.edges, hints, fill, open_ends, leaks)


ENCLOSED_ENOUGH = 0.6
"""When the drawing's closed regions cover less than this share of its silhouette, an opening
is cutting off part of the garment, and the silhouette supplies the rest."""


INK_COVERAGE = 224
"""After shrinking a drawing, a pixel darker than this (at least ~12% of it was ink) is ink."""


def prepare_drawing(rgb: np.ndarray, size: int) -> PreparedInput:
    """An uploaded drawing (RGB: black lines, coloured hints) -> the generator's input at `size`.

    Padded square with white paper, split into ink and hints at full resolution, then resized:
    lines by area averaging and then made solid wherever any real share of a pixel was ink (a
    2 px pen on the page's 512 px canvas must stay a wall at 256 px or 64 px, as the training
    edge maps are), hints by nearest neighbour so colours never blend with "no hint". Then
    `prepare_fill`, as in training.
    """
    edges, hints = split_sketch(square_pad(rgb))
    small = resize_square(edges, size)
    solid = np.where(small < INK_COVERAGE, 0, 255).astype(np.uint8)
    return prepare_fill(solid, resize_hints(hints, size))


def flat_fill(edges: np.ndarray, hints: Hints, *, pen: int | None = None) -> tuple[FlatFill, bool]:
    """The fill of `hints` over the garment drawn in `edges` (0 ink, 255 paper), and whether it
    leaks: part of the garment is open to the page, so the silhouette had to stand in for it.

    The garment is the drawing's enclosed paper, plus its silhouette's open part when the
    enclosed paper is only a small share of it (a sleeve closed, the body open).
    """
    if edges.shape != hints.mask.shape:
        raise ValueError(f"edges {edges.shape} and hints {hints.mask.shape} differ in size")
    h, w = edges.shape
    rgb = np.zeros((h, w, 3), np.uint8)
    weight = np.zeros((h, w), np.uint8)
    hinted = hints.hinted
    ink = ink_of(edges) & ~hinted
    if not ink.any() and not hinted.any():
        return FlatFill(rgb, weight), False
    pen = stroke_width(ink) if pen is None else pen
    count, labels = cv2.connectedComponents((~ink).astype(np.uint8), connectivity=4)
    outside = np.zeros(count, dtype=bool)
    outside[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    outside[0] = False  # label 0 is the ink itself
    enclosed = ~outside[labels] & ~ink
    garment = enclosed
    leaks = False
    if ink.any():
        silhouette = _silhouette(ink) & ~ink
        if enclosed.sum() < ENCLOSED_ENOUGH * max(1, silhouette.sum()):
            garment = enclosed | silhouette
            leaks = True
    if not hinted.any():
        rgb[garment] = NEUTRAL
        weight[garment] = DEFAULT
        _colour_the_lines(rgb, weight, ink, pen)
        return FlatFill(rgb, weight), leaks
    for region in np.unique(labels[hinted]):
        inside = labels == region
        if outside[region]:  # a hint on paper open to the page: only its part of the garment
            inside &= garment | hinted
            leaks = True
        _nearest_hint_colour(rgb, inside, hinted & (labels == region), hints.rgb)
        weight[inside] = GUESSED if outside[region] else SURE
    unhinted = garment & (weight == 0)
    if unhinted.any():
        _nearest_hint_colour(rgb, unhinted, hinted, hints.rgb)
        weight[unhinted] = GUESSED
    _colour_the_lines(rgb, weight, ink, pen)
    return FlatFill(rgb, weight), leaks


def _nearest_hint_colour(rgb: np.ndarray, where: np.ndarray, sources: np.ndarray, colours: np.ndarray) -> None:
    """rgb[where] = the colour of the nearest `sources` pixel (one colour: a plain fill)."""
    picked = colours[sources]
    if len(picked) == 0:
        return
    if (picked == picked[0]).all():
        rgb[where] = picked[0]
        return
    nearest = _nearest_index(sources)
    rgb[where] = colours.reshape(-1, 3)[nearest[where]]


def _nearest_index(sources: np.ndarray) -> np.ndarray:
    """Flat index of the nearest `sources` pixel, for every pixel (Euclidean distance)."""
    _, labels = cv2.distanceTransformWithLabels((~sources).astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(sources)
    lookup = np.zeros(int(labels.max()) + 1, np.int64)
    lookup[labels[ys, xs]] = ys * sources.shape[1] + xs
    return lookup[labels]


SILHOUETTE_CLOSINGS = (0.08, 0.16, 0.25)
"""Radii of the closings that guess an open drawing's silhouette, as shares of its size,
tried in turn: the smallest that encloses anything keeps the most of the drawing's shape."""


def _silhouette(ink: np.ndarray) -> np.ndarray:
    """The most a leaking fill may cover: what a closing of the ink encloses (concave shapes
    such as a t-shirt's armpits stay out), or the convex hull when no closing encloses anything."""
    extent = ink_extent(ink)
    for share in SILHOUETTE_CLOSINGS:
        radius = max(1.0, share * extent)
        pad = int(radius) + 2  # a closing must not glue the drawing to the frame
        paper = np.pad(~ink, pad, constant_values=True).astype(np.uint8)
        grown = cv2.distanceTransform(paper, cv2.DIST_L2, 3) <= radius  # dilation by a disc, via distances
        closed = cv2.distanceTransform(grown.astype(np.uint8), cv2.DIST_L2, 3) > radius  # then erosion
        closed = closed[pad:-pad, pad:-pad]
        enclosed = ~closed & ~reachable_from_border(~closed)
        if enclosed.any():
            return closed | enclosed
    ys, xs = np.nonzero(ink)
    out = np.zeros(ink.shape, np.uint8)
    if len(xs) >= 3:
        cv2.fillConvexPoly(out, cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32)), 1)
    return out > 0


def _colour_the_lines(rgb: np.ndarray, weight: np.ndarray, ink: np.ndarray, pen: int) -> None:
    """Ink pixels within a pen's width of the fill take the colour of the fill beside them."""
    filled = weight > 0
    if not filled.any() or not ink.any():
        return
    distance = cv2.distanceTransform((~filled).astype(np.uint8), cv2.DIST_L2, 3)
    near = ink & (distance <= pen + 1.0)
    if not near.any():
        return
    nearest = _nearest_index(filled)
    rgb[near] = rgb.reshape(-1, 3)[nearest[near]]
    weight[near] = weight.reshape(-1)[nearest[near]]
