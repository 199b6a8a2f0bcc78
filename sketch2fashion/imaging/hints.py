"""Colour hints: the dots and short strokes a shopper paints on a sketch to say "this part is red".

Training needs hints like a shopper's, simulated from the target photo: a few (sometimes none,
sometimes many), each one colour taken from the garment where it is painted, never from the
background, spread so every sizable colour region tends to get one. The hint image travels
with a separate mask channel, because "no hint" (0) must differ from "a black hint" (0, 0, 0).

Hints are also parsed back out of an uploaded drawing (`split_sketch`) and resized with
nearest-neighbour sampling (`resize_hints`), so hint colours never blend with "no hint".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sketch2fashion.imaging.edges import REFERENCE_SIZE

INK_THRESHOLD = 160
"""In an uploaded drawing, grey-ish pixels darker than this (grey level) are ink."""
SATURATION_THRESHOLD = 48
"""In an uploaded drawing, pixels with at least this chroma (max - min of R, G, B) are hints."""

MAX_REGIONS = 4
"""Colour clusters looked for on a garment (similar clusters are merged afterwards)."""
MERGE_DELTA_E = 15.0
"""Clusters whose Lab centres are closer than this are one colour region."""
LIGHTNESS_WEIGHT = 0.5
"""Colour regions are told apart with lightness counted at this weight against hue and chroma:
shading makes one fabric lighter and darker, and a shopper hints the fabric's colour, not the
highlight on a black sweater (which full-weight Lab clustering made a region of its own)."""
MIN_REGION_SHARE = 0.03
"""Regions smaller than this share of the garment are details, not regions needing a hint."""
STROKE_LENGTH = (3.0, 8.0)
"""Stroke length range, in multiples of the hint radius."""


@dataclass(frozen=True)
class Hints:
    """Colour hints: `rgb` uint8 HxWx3 (0 where no hint) and `mask` uint8 HxW (1 where hinted)."""

    rgb: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        if self.rgb.shape[:2] != self.mask.shape or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"hint rgb {self.rgb.shape} and mask {self.mask.shape} do not match")

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> Hints:
        """No hints on an image of this shape."""
        h, w = shape[:2]
        return cls(np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8))

    @property
    def hinted(self) -> np.ndarray:
        """Boolean HxW: where a hint is."""
        return self.mask > 0


def draw_hint_count(rng: np.random.Generator, n_range: tuple[int, int] = (0, 24)) -> int:
    """A hint count in n_range, drawn log-uniformly so few-hint sketches are the common case.

    Shoppers usually give one or two hints, sometimes none, rarely two dozen; with the default
    range about one sketch in five gets no hint at all.
    """
    low, high = int(n_range[0]), int(n_range[1])
    if high <= low:
        return low
    value = np.exp(rng.uniform(np.log(low + 1), np.log(high + 2))) - 1
    return int(np.clip(np.floor(value), low, high))


def _lab(photo: np.ndarray) -> np.ndarray:
    """CIE Lab (L 0..100) of an RGB uint8 image, as float32, so distances are Delta E."""
    return cv2.cvtColor(photo.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator,
            iterations: int = 10) -> np.ndarray:
    """Cluster centres by Lloyd's k-means with k-means++ seeding from `rng` (reproducible)."""
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = np.min(((points[:, None, :] - np.asarray(centres)[None]) ** 2).sum(axis=2), axis=1)
        if d2.sum() <= 0:
            break
        centres.append(points[rng.choice(len(points), p=d2 / d2.sum())])
    centres = np.asarray(centres, dtype=np.float32)
    for _ in range(iterations):
        nearest = np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        for c in range(len(centres)):
            members = points[nearest == c]
            if len(members):
                centres[c] = members.mean(axis=0)
    return centres


def _merge_close(centres: np.ndarray, delta_e: float) -> np.ndarray:
    """Drop centres within delta_e of an earlier one (two clusters of one colour)."""
    kept: list[np.ndarray] = []
    for centre in centres:
        if all(np.linalg.norm(centre - other) >= delta_e for other in kept):
            kept.append(centre)
    return np.asarray(kept, dtype=np.float32)


def colour_regions(photo: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *,
                   max_regions: int = MAX_REGIONS, merge_delta_e: float = MERGE_DELTA_E,
                   sample: int = 2000) -> np.ndarray:
    """Label map (int32 HxW) of the garment's colour regions; -1 off the garment.

    k-means in Lab (lightness weighted by LIGHTNESS_WEIGHT) over a sample of garment pixels,
    clusters closer than `merge_delta_e` merged, then every garment pixel takes its nearest centre. No blurring first: a blur
    would paint a blend colour along every stripe boundary and k-means would give it a region.
    """
    inside = mask > 0
    labels = np.full(mask.shape, -1, dtype=np.int32)
    if not inside.any():
        return labels
    pixels = _lab(photo)[inside] * np.float32([LIGHTNESS_WEIGHT, 1.0, 1.0])
    picked = pixels[rng.choice(len(pixels), size=min(sample, len(pixels)), replace=False)]
    centres = _merge_close(_kmeans(picked, max_regions, rng), merge_delta_e)
    labels[inside] = np.argmin(((pixels[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    return labels


def _pick_centre(rng: np.random.Generator, distance: np.ndarray,
                 radius: int) -> tuple[tuple[int, int], int]:
    """A random point at least `radius` (+ half a pixel) inside the region, and the radius used.

    A region too thin for the radius gets its innermost point and the largest radius that fits.
    """
    ys, xs = np.nonzero(distance > radius + 0.5)
    if len(xs) == 0:
        y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
        return (int(x), int(y)), max(0, int(np.floor(distance[y, x] - 1.0)))
    i = int(rng.integers(len(xs)))
    return (int(xs[i]), int(ys[i])), radius


def _stroke_path(rng: np.random.Generator, distance: np.ndarray, start: tuple[int, int],
                 radius: int, half_width: float) -> np.ndarray:
    """(N, 2) int points of a short, slightly bent stroke from `start`, stopped where it would
    leave its colour region."""
    length = rng.uniform(*STROKE_LENGTH) * max(radius, 1)
    heading = rng.uniform(0.0, 2.0 * np.pi)
    bend = rng.normal(0.0, 0.5)
    steps = np.arange(int(np.ceil(length)) + 1, dtype=np.float32)
    angle = heading + bend * (steps / max(length, 1.0))
    xs = start[0] + np.cumsum(np.cos(angle)) - np.cos(angle[0])
    ys = start[1] + np.cumsum(np.sin(angle)) - np.sin(angle[0])
    path = np.stack([np.round(xs), np.round(ys)], axis=1).astype(np.int32)
    h, w = distance.shape
    inside = (path[:, 0] >= 0) & (path[:, 0] < w) & (path[:, 1] >= 0) & (path[:, 1] < h)
    ok = inside.copy()
    ok[inside] = distance[path[inside, 1], path[inside, 0]] > half_width + 0.5
    stop = int(np.argmin(ok)) if not ok.all() else len(path)
    return path[:max(stop, 1)]


def _hintable_regions(regions: np.ndarray, smallest_dot: float
                      ) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Region ids and areas worth a hint, and each region's distance-to-edge map.

    A region is worth a hint when it is sizable (MIN_REGION_SHARE of the garment) and thick
    enough to hold the smallest dot (a blend line between two stripes is neither). When no
    region qualifies (a garment of slivers) all regions are used.
    """
    ids, areas = np.unique(regions[regions >= 0], return_counts=True)
    distances = {int(k): cv2.distanceTransform((regions == k).astype(np.uint8), cv2.DIST_L2,
                                               cv2.DIST_MASK_PRECISE) for k in ids}
    thick = np.array([distances[int(k)].max() > smallest_dot for k in ids], dtype=bool)
    keep = (areas >= MIN_REGION_SHARE * areas.sum()) & thick
    if not keep.any():
        keep = np.ones_like(keep)
    return ids[keep], areas[keep].astype(np.float64), distances


def _plan_regions(rng: np.random.Generator, ids: np.ndarray, areas: np.ndarray,
                  count: int) -> np.ndarray:
    """Region of each hint: first one per region (area-weighted order), then area-weighted."""
    share = areas / areas.sum()
    first = rng.choice(ids, size=min(count, len(ids)), replace=False, p=share)
    rest = rng.choice(ids, size=count - len(first), replace=True, p=share)
    return np.concatenate([first, rest])


def simulate_hints(
    photo: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator | int | None,
    *,
    n: int | None = None,
    n_range: tuple[int, int] = (0, 24),
    dot_radius: tuple[int, int] = (2, 4),
    stroke_fraction: float = 0.4,
    regions: np.ndarray | None = None,
    reference_size: int = REFERENCE_SIZE,
) -> Hints:
    """Shopper-like colour hints for `photo`, all on the garment `mask`.

    `n` hints (None: drawn from `n_range`), each a dot or (with probability `stroke_fraction`)
    a short stroke, painted in the photo's median colour under it. Hints stay inside one
    colour region (`regions`, a label map as from `colour_regions`, computed when None), so a
    hint on a striped shirt is one stripe's colour. `dot_radius` is in pixels at
    `reference_size`. The same seed gives the same hints.
    """
    if photo.shape[:2] != mask.shape[:2]:
        raise ValueError(f"photo {photo.shape} and mask {mask.shape} differ in size")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    count = draw_hint_count(rng, n_range) if n is None else int(n)
    hints = Hints.empty(photo.shape)
    inside = mask > 0
    if count <= 0 or not inside.any():
        return hints
    if regions is None:
        regions = colour_regions(photo, mask, rng)
    regions = np.where(inside, regions, -1)
    scale = min(mask.shape) / float(reference_size)
    smallest_dot = max(1.0, dot_radius[0] * scale)
    ids, areas, distances = _hintable_regions(regions, smallest_dot)
    if len(ids) == 0:
        return hints
    for region in _plan_regions(rng, ids, areas, count):
        distance = distances[int(region)]
        wanted = max(1, int(round(rng.integers(dot_radius[0], dot_radius[1] + 1) * scale)))
        centre, radius = _pick_centre(rng, distance, wanted)
        if rng.random() < stroke_fraction:
            width = max(1, radius)
            points = _stroke_path(rng, distance, centre, radius, width / 2.0)
        else:
            width, points = 0, np.array([centre], np.int32)
        ys, xs = _painted_pixels(regions, int(region), points, radius, width)
        if len(ys) == 0:
            continue
        hints.rgb[ys, xs] = np.median(photo[ys, xs], axis=0).round().astype(np.uint8)
        hints.mask[ys, xs] = 1
    return hints


def _painted_pixels(regions: np.ndarray, region: int, points: np.ndarray, radius: int,
                    width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of a dot (width 0: disc of `radius` at points[0]) or a stroke (polyline
    of `width` through points), clipped to `region`. Drawn in a small window, not the frame."""
    pad = max(radius, width) + 2
    h, w = regions.shape
    x0, y0 = max(0, int(points[:, 0].min()) - pad), max(0, int(points[:, 1].min()) - pad)
    x1, y1 = min(w, int(points[:, 0].max()) + pad + 1), min(h, int(points[:, 1].max()) + pad + 1)
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    local = (points - np.array([x0, y0], np.int32)).astype(np.int32)
    if width == 0:
        cv2.circle(canvas, (int(local[0, 0]), int(local[0, 1])), radius, 1, thickness=-1)
    else:
        cv2.polylines(canvas, [local.reshape(-1, 1, 2)], False, 1, thickness=width)
    ys, xs = np.nonzero((canvas > 0) & (regions[y0:y1, x0:x1] == region))
    return ys + y0, xs + x0


def compose_sketch(edges: np.ndarray, hints: Hints) -> np.ndarray:
    """What a shopper's drawing looks like: black lines on white, coloured hints on top (RGB)."""
    if edges.shape != hints.mask.shape:
        raise ValueError(f"edges {edges.shape} and hints {hints.mask.shape} differ in size")
    out = np.repeat(edges[..., None], 3, axis=2)
    hinted = hints.hinted
    out[hinted] = hints.rgb[hinted]
    return out


def split_sketch(rgb: np.ndarray, *, ink_threshold: int = INK_THRESHOLD,
                 saturation_threshold: int = SATURATION_THRESHOLD) -> tuple[np.ndarray, Hints]:
    """Parse an uploaded drawing into an edge map (0 ink, 255 paper) and colour hints.

    Coloured pixels (chroma = max - min of R, G, B at least `saturation_threshold`) are hints;
    grey-ish pixels darker than `ink_threshold` are ink; the rest is paper. Chroma rather than
    HSV saturation, so dark JPEG noise on black lines does not count as colour.

    Limits of a single RGB image: an achromatic hint (white, grey or black paint) cannot be
    told from paper or ink, and lines under a hint are lost. That is why the UI will send the
    hint layer separately; this parser is the fallback for plain uploaded images.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image HxWx3, got shape {rgb.shape}")
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    hinted = _at_least(_chroma(rgb), saturation_threshold)  # 0 / 255
    paper = _at_least(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), ink_threshold)
    edges = cv2.bitwise_or(paper, hinted)  # ink: dark and not a hint
    hints = Hints(cv2.bitwise_and(rgb, rgb, mask=hinted), np.bitwise_and(hinted, 1))
    return edges, hints


def _chroma(rgb: np.ndarray) -> np.ndarray:
    """max - min of R, G, B (uint8 HxW) by whole-plane OpenCV ops. split_sketch runs on every
    /colorize request, and numpy's max/min over the 3-long last axis made it ~50x slower."""
    r, g, b = cv2.split(rgb)
    return cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))


def _at_least(plane: np.ndarray, threshold: float) -> np.ndarray:
    """255 where a uint8 plane is >= threshold, else 0. cv2.threshold (src > an integer) rather
    than cv2.compare, which takes a 1x1 image for a scalar and fails on it."""
    below = min(max(math.ceil(threshold) - 1, -1), 255)
    return cv2.threshold(plane, below, 255, cv2.THRESH_BINARY)[1]


def resize_hints(hints: Hints, size: int | tuple[int, int]) -> Hints:
    """Hints at another size (`size`: side, or (height, width)) without blending colours.

    Nearest-neighbour sampling keeps colours exact and the mask binary. Plain nearest-neighbour
    can skip a dot smaller than the step when shrinking, so target pixels whose footprint holds
    any hint but whose sample missed it are rescued with that footprint's mean hint colour
    (hint pixels only, never the 0 of "no hint").
    """
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    dsize = (width, height)
    rgb = cv2.resize(hints.rgb, dsize, interpolation=cv2.INTER_NEAREST)
    mask = cv2.resize(hints.mask, dsize, interpolation=cv2.INTER_NEAREST)
    h, w = hints.mask.shape
    if height < h or width < w:
        weight = hints.hinted.astype(np.float32)
        cover = cv2.resize(weight, dsize, interpolation=cv2.INTER_AREA)
        total = cv2.resize(hints.rgb.astype(np.float32) * weight[..., None], dsize,
                           interpolation=cv2.INTER_AREA)
        rescued = (cover > 1e-6) & (mask == 0)
        mean = total[rescued] / cover[rescued][:, None]
        rgb[rescued] = np.clip(np.round(mean), 0, 255).astype(np.uint8)
        mask[rescued] = 1
    return Hints(rgb, (mask > 0).astype(np.uint8))
