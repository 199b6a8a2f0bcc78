"""Training-time augmentation: make edge maps look like what shoppers actually draw.

The pix2pix maintainers note that models trained only on detector edges generalise poorly to
hand drawings. A shopper's pen is heavier or lighter than ours, strokes stop short, interior
detail is left out and lines wander a little off the true contour. Each function below imitates
one of those habits on an edge map (uint8 HxW, 0 = ink, 255 = paper); `geometric` varies the
framing of photo, mask and edges together so they stay aligned.

Lengths are given in pixels at `reference_size` (256, as in `imaging.edges`) and scaled to the
image, so a 64 px debug run sees proportionally the same augmentation as a 512 px one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from sketch2fashion.imaging.edges import INK, PAPER, REFERENCE_SIZE
from sketch2fashion.imaging.outline import ink_of, skeleton

WHITE = (255, 255, 255)


def _scale(shape: tuple[int, ...], reference_size: int) -> float:
    """Factor from lengths at `reference_size` to lengths on an image of this shape."""
    return min(shape[:2]) / float(reference_size)


def _disc(radius: int) -> np.ndarray:
    """A round structuring element: pens are round, and square ones make diagonals too heavy."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _as_edges(ink: np.ndarray) -> np.ndarray:
    return np.where(ink, INK, PAPER).astype(np.uint8)


# --- line weight -----------------------------------------------------------------------------

def change_line_weight(edges: np.ndarray, delta: int) -> np.ndarray:
    """Lines `delta` pixels heavier on each side (delta > 0) or lighter (delta < 0).

    Thinning is erosion united with the ink's skeleton, so a line thinner than the erosion
    becomes one pixel wide instead of vanishing: a light pen still draws every stroke.
    """
    ink = ink_of(edges)
    if delta == 0 or not ink.any():
        return _as_edges(ink)
    pen = _disc(abs(int(delta)))
    if delta > 0:
        return _as_edges(cv2.dilate(ink.astype(np.uint8), pen) > 0)
    return _as_edges((cv2.erode(ink.astype(np.uint8), pen) > 0) | skeleton(ink))


def jitter_line_weight(edges: np.ndarray, rng: np.random.Generator, max_delta: float = 1.5,
                       *, reference_size: int = REFERENCE_SIZE) -> np.ndarray:
    """Lines made heavier or lighter by a random amount up to `max_delta` px (at reference size).

    The amount is drawn uniformly in [-max_delta, max_delta], scaled to the image and rounded,
    so small images get whole-pixel changes only as often as their scale allows.
    """
    delta = rng.uniform(-max_delta, max_delta) * _scale(edges.shape, reference_size)
    return change_line_weight(edges, int(round(delta)))


# --- broken strokes --------------------------------------------------------------------------

def break_strokes(edges: np.ndarray, rng: np.random.Generator, n_gaps: int, gap_len: float = 4.0,
                  *, reference_size: int = REFERENCE_SIZE) -> np.ndarray:
    """Erase `n_gaps` short pieces of stroke, each about `gap_len` px long (at reference size).

    Gaps are centred on stroke centre lines (ridges of the ink's distance map) and made at least
    as wide as the stroke there, so each one really cuts its line rather than nicking an edge.
    """
    ink = ink_of(edges)
    out = _as_edges(ink)
    if n_gaps <= 0 or not ink.any():
        return out
    distance = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)
    ridge = ink & (distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8)))
    ys, xs = np.nonzero(ridge)
    picks = rng.choice(len(xs), size=min(int(n_gaps), len(xs)), replace=False)
    half_gap = 0.5 * gap_len * _scale(edges.shape, reference_size)
    for i in picks:
        x, y = int(xs[i]), int(ys[i])
        radius = int(np.ceil(max(half_gap, distance[y, x] + 0.5)))
        cv2.circle(out, (x, y), radius, PAPER, thickness=-1)
    return out


# --- simplification --------------------------------------------------------------------------

def drop_details(edges: np.ndarray, rng: np.random.Generator, keep_outline_mask: np.ndarray,
                 drop_fraction: float = 0.5, *, band: float = 4.0,
                 reference_size: int = REFERENCE_SIZE) -> np.ndarray:
    """Remove about `drop_fraction` of the interior ink components; the silhouette stays.

    `keep_outline_mask` is the garment mask (nonzero on the garment): ink within `band` px
    (at reference size) of its boundary is the outline and is always kept. The remaining ink
    falls apart into interior details (seams, folds, print lines), each dropped independently,
    the way a shopper draws a plain outline with only some of the inner lines.
    """
    ink = ink_of(edges)
    garment = (keep_outline_mask > 0).astype(np.uint8)
    if drop_fraction <= 0 or not ink.any() or not garment.any():
        return _as_edges(ink)
    pen = _disc(max(1, int(round(band * _scale(edges.shape, reference_size)))))
    outline_band = (cv2.dilate(garment, pen) > 0) & ~(cv2.erode(garment, pen) > 0)
    detail = ink & ~outline_band
    count, labels = cv2.connectedComponents(detail.astype(np.uint8), connectivity=8)
    dropped = rng.random(count) < drop_fraction
    dropped[0] = False  # label 0 is "not detail ink"
    return _as_edges(ink & ~dropped[labels])


# --- wobbly lines ----------------------------------------------------------------------------

def smooth_displacement(shape: tuple[int, ...], rng: np.random.Generator, amplitude: float,
                        wavelength: float) -> tuple[np.ndarray, np.ndarray]:
    """Random smooth (dx, dy) fields in pixels: Gaussian noise on a coarse grid, cubic-upsampled.

    `wavelength` is the grid spacing in pixels: the distance over which a line's offset changes.
    """
    h, w = shape[:2]
    cells_y = max(2, int(round(h / max(wavelength, 1.0))) + 1)
    cells_x = max(2, int(round(w / max(wavelength, 1.0))) + 1)
    noise = rng.standard_normal((2, cells_y, cells_x)).astype(np.float32) * np.float32(amplitude)
    dx = cv2.resize(noise[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(noise[1], (w, h), interpolation=cv2.INTER_CUBIC)
    return dx, dy


def remap_lines(edges: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Edge map sampled at source positions (map_x, map_y) per output pixel, nearest-neighbour,
    with the lines that nearest sampling steps over put back. Outside the source is paper.

    Wherever a warp stretches or turns (zoom-out, rotation, the stretching half of a wobble),
    neighbouring output pixels can sample source pixels that are not neighbours, and a
    one-pixel line between them vanishes: an outline with a gap, through which colour bleeds.
    For such pairs the source pixels in the box between the two samples are looked at too, and
    any ink there goes to the first output pixel. A line separating the two samples must cross
    that box, so outlines stay closed; lines get at most a pixel heavier, and only where a
    jump happened. Steps are capped at 2 pixels per axis: warps stretching 2x or more can
    still lose lines (ours stay near 1.1x).
    """
    ink = np.pad(ink_of(edges), 1)  # a paper frame that out-of-range samples clamp onto
    h, w = ink.shape
    sx = np.clip(np.rint(map_x).astype(np.int64) + 1, 0, w - 1)
    sy = np.clip(np.rint(map_y).astype(np.int64) + 1, 0, h - 1)
    out = ink[sy, sx]
    for first, second in (((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
                          ((slice(None), slice(None, -1)), (slice(None), slice(1, None)))):
        ax, ay, bx, by = sx[first], sy[first], sx[second], sy[second]
        jumped = np.nonzero(np.abs(bx - ax) + np.abs(by - ay) >= 2)
        ax, ay, dx, dy = ax[jumped], ay[jumped], (bx - ax)[jumped], (by - ay)[jumped]
        span_x, span_y = np.minimum(np.abs(dx), 2), np.minimum(np.abs(dy), 2)
        between = np.zeros(len(ax), dtype=bool)
        for i, j in ((0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)):  # not a
            inner = (i <= span_x) & (j <= span_y) & ~((i == span_x) & (j == span_y))  # nor b
            x = np.clip(ax + np.sign(dx) * i, 0, w - 1)
            y = np.clip(ay + np.sign(dy) * j, 0, h - 1)
            between |= inner & ink[y, x]
        out[first][jumped] |= between
    return _as_edges(out)


def wobble(edges: np.ndarray, rng: np.random.Generator, amplitude: float = 1.5,
           wavelength: float = 48.0, *, reference_size: int = REFERENCE_SIZE) -> np.ndarray:
    """Lines displaced by a small smooth elastic field (`amplitude` px typical, at reference size).

    A hand never retraces the photo's contour exactly; the offset drifts slowly along a line.
    Keep `amplitude` well below `wavelength` / 4 so the field stays gentle (no folds).
    """
    scale = _scale(edges.shape, reference_size)
    if amplitude * scale <= 0:
        return _as_edges(ink_of(edges))
    dx, dy = smooth_displacement(edges.shape, rng, amplitude * scale, wavelength * scale)
    h, w = edges.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return remap_lines(edges, grid_x + dx, grid_y + dy)


# --- framing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class GeometricTransform:
    """One affine warp (flip, rotation, scale, shift) for a photo, its mask and its edge map.

    `matrix` is the 2x3 forward map (source pixel -> output pixel) about the image centre.
    Uncovered areas become white paper / background (photo, edges) and "not garment" (mask).
    The photo is sampled bilinearly; mask and edges nearest-neighbour so they stay binary,
    the edges by `remap_lines`, so zooming out or rotating never breaks a one-pixel line.
    """

    matrix: np.ndarray
    size: int

    def photo(self, image: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(image, self.matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=WHITE)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(mask, self.matrix, (self.size, self.size), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def edges(self, edges: np.ndarray) -> np.ndarray:
        inverse = cv2.invertAffineTransform(self.matrix)  # output pixel -> source position
        grid_x, grid_y = np.meshgrid(np.arange(self.size, dtype=np.float64),
                                     np.arange(self.size, dtype=np.float64))
        map_x = inverse[0, 0] * grid_x + inverse[0, 1] * grid_y + inverse[0, 2]
        map_y = inverse[1, 0] * grid_x + inverse[1, 1] * grid_y + inverse[1, 2]
        return remap_lines(edges, map_x, map_y)

    def apply(self, photo: np.ndarray, mask: np.ndarray,
              edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(photo, mask, edges) warped alike."""
        return self.photo(photo), self.mask(mask), self.edges(edges)


def geometric(rng: np.random.Generator, size: int, *, p_flip: float = 0.5,
              max_rotation: float = 8.0, scale_range: tuple[float, float] = (0.9, 1.1),
              max_shift: float = 0.05) -> GeometricTransform:
    """A random framing for size x size images: a left-right mirror with probability `p_flip`,
    rotation within +-`max_rotation` degrees, scale in `scale_range`, shift within
    +-`max_shift` of the side.

    Only left-right mirroring: garments are roughly symmetric that way, while upside-down
    trousers are not a sketch anyone draws.
    """
    centre = (size - 1) / 2.0
    flip = np.eye(3)
    if rng.random() < p_flip:
        flip[0, 0], flip[0, 2] = -1.0, size - 1.0  # x -> size-1-x: pixel centres map exactly
    angle = rng.uniform(-max_rotation, max_rotation)
    scale = rng.uniform(*scale_range)
    shift = rng.uniform(-max_shift, max_shift, size=2) * size
    rotate = np.eye(3)
    rotate[:2] = cv2.getRotationMatrix2D((centre, centre), float(angle), float(scale))
    rotate[:2, 2] += shift
    return GeometricTransform(matrix=(rotate @ flip)[:2].astype(np.float64), size=int(size))


# --- bundle ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SketchAugment:
    """Probabilities and strengths of every augmentation; one instance per training run.

    Built from params.yaml `train.augment` by `augment_from_params`; the keys are these field
    names (lengths in px at `reference_size`):

      p_flip            probability of a left-right mirror
      max_rotation      degrees, rotation drawn in +-max_rotation
      scale_range       [low, high] zoom factors
      max_shift         fraction of the image side, shift drawn in +-max_shift per axis
      p_line_weight     probability of a heavier/lighter pen; max_line_delta px per side
      p_break           probability of broken strokes; max_gaps gaps (1..max_gaps), gap_len px
      p_drop            probability of simplification; drop_fraction of interior components
      p_wobble          probability of wobbly lines; wobble_amplitude px, wobble_wavelength px
      reference_size    image side at which the px lengths hold
    """

    p_flip: float = 0.5
    max_rotation: float = 8.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_shift: float = 0.05
    p_line_weight: float = 0.5
    max_line_delta: float = 1.5
    p_break: float = 0.25
    max_gaps: int = 2
    gap_len: float = 4.0
    p_drop: float = 0.3
    drop_fraction: float = 0.5
    p_wobble: float = 0.5
    wobble_amplitude: float = 1.5
    wobble_wavelength: float = 48.0
    reference_size: int = REFERENCE_SIZE

    def __post_init__(self) -> None:
        for name in ("p_flip", "p_line_weight", "p_break", "p_drop", "p_wobble", "drop_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"train.augment.{name} must be within 0..1, got {getattr(self, name)}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"train.augment.scale_range must be [low, high] with 0 < low <= high, "
                             f"got {list(self.scale_range)}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> SketchAugment:
        """Fields from a mapping; unknown keys are refused so a typo cannot silently fall back."""
        known = {f.name for f in fields(cls)}
        unknown = set(cfg) - known - {"enabled"}
        if unknown:
            raise ValueError(f"train.augment: unknown key(s) {sorted(unknown)}; "
                             f"accepted: {sorted(known) + ['enabled']}")
        values: dict[str, Any] = {}
        for name, value in cfg.items():
            if name == "enabled":
                continue
            if name == "scale_range":
                values[name] = (float(value[0]), float(value[1]))
            elif name in ("max_gaps", "reference_size"):
                values[name] = int(value)
            else:
                values[name] = float(value)
        return cls(**values)

    def geometric(self, rng: np.random.Generator, size: int) -> GeometricTransform:
        """This run's random framing for one sample."""
        return geometric(rng, size, p_flip=self.p_flip, max_rotation=self.max_rotation,
                         scale_range=self.scale_range, max_shift=self.max_shift)

    def sketch(self, edges: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The edge map redrawn the way a shopper might: simplified, re-weighted, wobbly, broken.

        Every random number is drawn whether or not its step applies, so one sample's draws do
        not depend on the probabilities (changing p_drop does not reshuffle everything else).
        """
        ref = self.reference_size
        coins = rng.random(4)
        seeds = rng.integers(0, 2**63, size=4)
        n_gaps = int(rng.integers(1, max(1, self.max_gaps) + 1))
        out = edges
        if coins[0] < self.p_drop:
            out = drop_details(out, np.random.default_rng(seeds[0]), mask, self.drop_fraction,
                               reference_size=ref)
        if coins[1] < self.p_line_weight:
            out = jitter_line_weight(out, np.random.default_rng(seeds[1]), self.max_line_delta,
                                     reference_size=ref)
        if coins[2] < self.p_wobble:
            out = wobble(out, np.random.default_rng(seeds[2]), self.wobble_amplitude,
                         self.wobble_wavelength, reference_size=ref)
        if coins[3] < self.p_break and self.max_gaps > 0:
            out = break_strokes(out, np.random.default_rng(seeds[3]), n_gaps, self.gap_len,
                                reference_size=ref)
        return out if out is not edges else edges.copy()


def augment_from_params(cfg: Mapping[str, Any] | bool | None) -> SketchAugment | None:
    """params.yaml `train.augment` -> SketchAugment, or None when absent, false or enabled: false."""
    if cfg is None or cfg is False:
        return None
    if cfg is True:
        return SketchAugment()
    if not bool(cfg.get("enabled", True)):
        return None
    return SketchAugment.from_mapping(cfg)
