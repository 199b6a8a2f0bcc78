"""Doodles: a garment drawn the way shoppers draw it in a few seconds, made from its photo and mask.

Edge maps of product photos are not what people draw. A shopper draws one quick outline, often
in one or a few strokes; leaves a hem or a waistband open; skips seams, folds and texture; gets
proportions wrong (sleeves too wide, legs too short); draws small and off-centre; and uses a
thin pen (public doodle collections of t-shirts, trousers and hats look exactly like that).

`synthesise_doodle` imitates each habit from what ingest already has (the photo and its garment
mask) and returns the drawing together with a *matching* target: the photo is warped with the
same proportion change and re-cut to the drawn outline (its texture extended where the outline
runs outside the real garment, white outside it), so a pixel loss never asks the generator to
paint where the shopper drew paper, or paper where the shopper drew garment.

`DoodleStyle` holds one family of settings. Training and evaluation use different families
(`TRAIN_STYLE`, `EVAL_STYLE`) and RNG streams, so the doodle evaluation measures how the model
copes with drawings it was not tuned on rather than how well it memorised one generator.

Lengths are fractions of the garment's size (its bounding box's longer side) or, for the pen,
pixels at `REFERENCE_SIZE`, so a 64 px test run sees proportionally the same drawings.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import cv2
import numpy as np

from sketch2fashion.colorizer.augment import remap_lines
from sketch2fashion.imaging.edges import INK, PAPER, REFERENCE_SIZE
from sketch2fashion.imaging.outline import ink_of, skeleton

WHITE = (255, 255, 255)
Range = tuple[float, float]


@dataclass(frozen=True)
class DoodleStyle:
    """How a family of doodles is drawn; every range is sampled uniformly per drawing.

      scale          the garment's longer side as a share of the canvas (30-100%: small drawings)
      aspect         width / height change (non-uniform scale: proportions drawn wrong)
      warp           smooth proportion warp, amplitude as a share of the garment's size
      rotation       degrees
      simplify       Ramer-Douglas-Peucker tolerance, share of the garment's size
      jitter         hand wobble along the stroke, share of the garment's size
      strokes        the outline is drawn as this many strokes (int range)
      pen            pen width in pixels at REFERENCE_SIZE (int range, 1-3 px as the page draws)
      p_gap          probability the outline is left open somewhere (a hem, a waistband)
      gap            length of that opening, share of the outline's perimeter
      p_overshoot    probability per corner that the line runs past it (and crosses)
      overshoot      length of an overshoot, share of the garment's size
      p_details      probability of keeping a few interior lines (a neckline, a fly, a seam)
      max_details    at most this many interior lines kept
    """

    scale: Range = (0.3, 1.0)
    aspect: Range = (0.8, 1.25)
    warp: Range = (0.0, 0.08)
    rotation: float = 6.0
    simplify: Range = (0.004, 0.03)
    jitter: Range = (0.0, 0.012)
    strokes: tuple[int, int] = (1, 4)
    pen: tuple[int, int] = (1, 3)
    p_gap: float = 0.5
    gap: Range = (0.02, 0.12)
    p_overshoot: float = 0.3
    overshoot: Range = (0.01, 0.06)
    p_details: float = 0.5
    max_details: int = 3

    def __post_init__(self) -> None:
        for name in ("p_gap", "p_overshoot", "p_details"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"doodle.{name} must be within 0..1, got {getattr(self, name)}")
        for name in ("scale", "aspect", "warp", "simplify", "jitter", "strokes", "pen", "gap", "overshoot"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"doodle.{name} must be [low, high] with 0 <= low <= high, got {[low, high]}")
        if not 0 < self.scale[1] <= 1.0 or self.strokes[0] < 1 or self.pen[0] < 1:
            raise ValueError("doodle: scale must be within (0, 1], strokes and pen at least 1")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any], base: DoodleStyle | None = None) -> DoodleStyle:
        """`base` (default: the class defaults) with the keys of `cfg`; unknown keys are refused."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(cfg) - set(known)
        if unknown:
            raise ValueError(f"doodle style: unknown key(s) {sorted(unknown)}; accepted: {sorted(known)}")
        values: dict[str, Any] = {}
        for name, value in cfg.items():
            if name in ("strokes", "pen"):
                values[name] = (int(value[0]), int(value[1]))
            elif name == "max_details":
                values[name] = int(value)
            elif isinstance(value, (list, tuple)):
                values[name] = (float(value[0]), float(value[1]))
            else:
                values[name] = float(value)
        return replace(base or cls(), **values)


TRAIN_STYLE = DoodleStyle()
"""The training family."""

EVAL_STYLE = DoodleStyle(scale=(0.45, 0.95), aspect=(0.75, 1.3), warp=(0.02, 0.1), rotation=8.0,
                         simplify=(0.01, 0.045), jitter=(0.004, 0.016), strokes=(1, 2), pen=(2, 3),
                         p_gap=0.7, gap=(0.04, 0.15), p_overshoot=0.5, overshoot=(0.02, 0.07),
                         p_details=0.35, max_details=2)
"""The evaluation family: rougher, more often open, fewer strokes, and a pen the page's default
(2-3 px) rather than 1 px; its own ranges, so it is not the training distribution replayed."""


@dataclass(frozen=True)
class Doodle:
    """A drawing and what it depicts, all size x size uint8.

    `edges`: 0 ink / 255 paper. `mask`: 255 on the drawn garment (the outline's inside, as the
    shopper meant it, gaps or not). `photo`: the product photo warped like the drawing and
    re-cut to `mask` on white: the target a generator should produce for `edges`.
    """

    edges: np.ndarray
    mask: np.ndarray
    photo: np.ndarray


def synthesise_doodle(photo: np.ndarray, mask: np.ndarray, edges: np.ndarray | None,
                      rng: np.random.Generator, style: DoodleStyle = TRAIN_STYLE, *,
                      size: int | None = None, reference_size: int = REFERENCE_SIZE) -> Doodle:
    """A shopper-like doodle of the garment in `photo` / `mask` (0/255), with its matching target.

    `edges` (the product's edge map, optional) supplies interior lines a shopper might keep.
    Every random number comes from `rng`, so the same generator state gives the same doodle.
    """
    size = int(size or photo.shape[0])
    if photo.shape[:2] != mask.shape[:2]:
        raise ValueError(f"photo {photo.shape} and mask {mask.shape} differ in size")
    draws = _Draws.sample(rng, style)
    garment = mask > 0
    if garment.sum() < 16:  # nothing to draw round: an empty page
        return Doodle(np.full((size, size), PAPER, np.uint8), np.zeros((size, size), np.uint8),
                      np.full((size, size, 3), 255, np.uint8))
    map_x, map_y, extent = _placement(garment, size, draws, rng)
    warped_photo = cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=WHITE)
    warped_mask = cv2.remap(garment.astype(np.uint8) * 255, map_x, map_y, cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 127
    outline = _outline(warped_mask, extent * draws.simplify)
    if outline is None:
        return Doodle(np.full((size, size), PAPER, np.uint8), np.zeros((size, size), np.uint8),
                      np.full((size, size, 3), 255, np.uint8))
    path = _wobble(_resample(outline, 2.0), rng, extent * draws.jitter)
    region = np.zeros((size, size), np.uint8)
    cv2.fillPoly(region, [np.round(path).astype(np.int32).reshape(-1, 1, 2)], 255)
    pen = max(1, int(round(draws.pen * size / float(reference_size))))
    lines = np.zeros((size, size), np.uint8)  # one-pixel centre lines, then the pen's width
    for stroke in _strokes(path, rng, draws, extent):
        cv2.polylines(lines, [np.round(stroke * 16).astype(np.int32).reshape(-1, 1, 2)], False, 1,
                      thickness=1, lineType=cv2.LINE_8, shift=4)
    if edges is not None and draws.details > 0:
        _draw_details(lines, edges, map_x, map_y, warped_mask, draws.details, rng, size, reference_size)
    if pen > 1:  # OpenCV's own thick lines come out wider than asked (thickness 3 draws ~4-5 px)
        lines = cv2.dilate(lines, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (pen, pen)))
    drawing = np.where(lines > 0, INK, PAPER).astype(np.uint8)
    target = _recut(warped_photo, warped_mask, region > 0)
    return Doodle(drawing, region, target)


@dataclass(frozen=True)
class _Draws:
    """One doodle's random choices, drawn up front in a fixed order."""

    scale: float
    aspect: float
    warp: float
    rotation: float
    simplify: float
    jitter: float
    strokes: int
    pen: int
    gap: float          # 0 = closed
    overshoot: float    # 0 = none
    p_overshoot: float
    details: int

    @classmethod
    def sample(cls, rng: np.random.Generator, s: DoodleStyle) -> _Draws:
        u = rng.random(14)

        def between(r: Range, x: float) -> float:
            return r[0] + (r[1] - r[0]) * x

        return cls(
            scale=between(s.scale, u[0]),
            aspect=float(np.exp(between((np.log(s.aspect[0]), np.log(s.aspect[1])), u[1]))),
            warp=between(s.warp, u[2]),
            rotation=s.rotation * (2 * u[3] - 1),
            simplify=between(s.simplify, u[4]),
            jitter=between(s.jitter, u[5]),
            strokes=int(s.strokes[0] + np.floor(u[6] * (s.strokes[1] - s.strokes[0] + 1))),
            pen=int(s.pen[0] + np.floor(u[7] * (s.pen[1] - s.pen[0] + 1))),
            gap=between(s.gap, u[9]) if u[8] < s.p_gap else 0.0,
            overshoot=between(s.overshoot, u[11]) if s.p_overshoot > 0 else 0.0,
            p_overshoot=s.p_overshoot,
            details=int(np.floor(u[13] * (s.max_details + 1))) if u[12] < s.p_details else 0,
        )


def _placement(garment: np.ndarray, size: int, d: _Draws,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Sampling maps (output pixel -> source position) that scale, stretch, rotate, move and
    smoothly warp the garment, and its longer side in the output (pixels).

    One map for everything, so the photo is resampled once (no double blur).
    """
    ys, xs = np.nonzero(garment)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    src_centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    longer = float(max(x1 - x0, y1 - y0))
    sx, sy = np.sqrt(d.aspect), 1.0 / np.sqrt(d.aspect)
    zoom = d.scale * size / (longer * max(sx, sy))
    angle = np.deg2rad(d.rotation)
    cos, sin = np.cos(angle), np.sin(angle)
    forward = np.array([[cos, -sin], [sin, cos]]) @ np.diag([zoom * sx, zoom * sy])
    half = np.abs(forward) @ np.array([(x1 - x0) / 2.0, (y1 - y0) / 2.0])  # output half-extent
    room = np.maximum(size / 2.0 - half - 1.0, 0.0)
    dst_centre = size / 2.0 + rng.uniform(-1.0, 1.0, size=2) * room
    inverse = np.linalg.inv(forward)
    grid_x, grid_y = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    extent = float(d.scale * size)
    if d.warp > 0:  # smooth displacement in the output: a sleeve, a leg or the crown grows or shrinks
        grid_x, grid_y = _displace(grid_x, grid_y, rng, d.warp * extent, 0.5 * extent)
    rel_x, rel_y = grid_x - dst_centre[0], grid_y - dst_centre[1]
    map_x = inverse[0, 0] * rel_x + inverse[0, 1] * rel_y + src_centre[0]
    map_y = inverse[1, 0] * rel_x + inverse[1, 1] * rel_y + src_centre[1]
    return map_x.astype(np.float32), map_y.astype(np.float32), extent


def _displace(grid_x: np.ndarray, grid_y: np.ndarray, rng: np.random.Generator, amplitude: float,
              wavelength: float) -> tuple[np.ndarray, np.ndarray]:
    """The grids moved by a smooth random field (a few control points, cubic-interpolated)."""
    h, w = grid_x.shape
    cells = max(2, int(round(w / max(wavelength, 1.0))) + 1)
    noise = rng.standard_normal((2, cells, cells)).astype(np.float32) * np.float32(amplitude / 2.0)
    dx = cv2.resize(noise[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(noise[1], (w, h), interpolation=cv2.INTER_CUBIC)
    return grid_x + dx, grid_y + dy


def _outline(garment: np.ndarray, tolerance: float) -> np.ndarray | None:
    """The garment's outer outline as a closed polygon (K x 2 float), simplified by RDP."""
    contours, _ = cv2.findContours(garment.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    if cv2.contourArea(contour) < 16:
        return None
    simple = cv2.approxPolyDP(contour, max(0.5, float(tolerance)), True).reshape(-1, 2).astype(np.float64)
    return simple if len(simple) >= 3 else contour.reshape(-1, 2).astype(np.float64)


def _resample(polygon: np.ndarray, step: float) -> np.ndarray:
    """A closed polygon as points every `step` pixels along it (the last point joins the first)."""
    closed = np.vstack([polygon, polygon[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(8, int(np.ceil(along[-1] / step)))
    at = np.linspace(0.0, along[-1], n, endpoint=False)
    return np.stack([np.interp(at, along, closed[:, 0]), np.interp(at, along, closed[:, 1])], axis=1)


def _smooth_noise(rng: np.random.Generator, n: int, wavelength: int) -> np.ndarray:
    """n values of smooth 1-D noise (unit-ish amplitude), periodic so a closed line stays closed."""
    knots = max(3, n // max(1, wavelength))
    values = rng.standard_normal(knots)
    at = np.arange(n) * knots / n
    i = np.floor(at).astype(int)
    t = at - i
    t = t * t * (3 - 2 * t)
    return values[i % knots] * (1 - t) + values[(i + 1) % knots] * t


def _wobble(path: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """The path pushed sideways by smooth noise: a hand never follows the contour exactly."""
    if amplitude <= 0:
        return path
    n = len(path)
    offset = np.stack([_smooth_noise(rng, n, 12), _smooth_noise(rng, n, 12)], axis=1)
    return path + amplitude * offset


def _strokes(path: np.ndarray, rng: np.random.Generator, d: _Draws, extent: float) -> list[np.ndarray]:
    """The closed path cut into `d.strokes` open strokes, one opening left out, corners overshot.

    The opening prefers the bottom of the drawing (hems) but may be anywhere (a waistband).
    """
    n = len(path)
    start = int(rng.integers(n))
    order = np.roll(np.arange(n), -start)
    keep = np.ones(n, dtype=bool)
    if d.gap > 0:
        length = max(2, int(round(d.gap * n)))
        if rng.random() < 0.6:  # a hem: the opening centred on one of the lowest points
            low = np.argsort(-path[:, 1])[: max(1, n // 10)]
            centre = int(rng.choice(low))
        else:
            centre = int(rng.integers(n))
        keep[(centre + np.arange(length) - length // 2) % n] = False
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, d.strokes - 1), replace=False))
    pieces: list[np.ndarray] = []
    for run in np.split(order, cuts):
        current: list[int] = []
        for i in run:
            if keep[i]:
                current.append(int(i))
            elif current:
                pieces.append(path[current])
                current = []
        if current:
            pieces.append(path[current])
    if not any(~keep) and len(pieces) >= 1 and d.strokes == 1:
        pieces[0] = np.vstack([pieces[0], pieces[0][:1]])  # one closed stroke
    out = []
    for piece in pieces:
        if len(piece) < 2:
            continue
        if d.overshoot > 0:
            piece = _overshoot(piece, rng, d, extent)
        out.append(piece)
    return out


def _overshoot(piece: np.ndarray, rng: np.random.Generator, d: _Draws, extent: float) -> np.ndarray:
    """Either end of a stroke carried on past where it should stop, in its own direction."""
    ends = [piece]
    for where in (0, -1):
        if rng.random() >= d.p_overshoot:
            continue
        tip = piece[where]
        back = piece[min(3, len(piece) - 1)] if where == 0 else piece[max(-4, -len(piece))]
        direction = tip - back
        norm = float(np.hypot(*direction))
        if norm < 1e-6:
            continue
        extra = tip + direction / norm * d.overshoot * extent * rng.uniform(0.5, 1.0)
        ends.append(np.array([extra]))
        piece = np.vstack([extra[None], piece]) if where == 0 else np.vstack([piece, extra[None]])
    return piece


def _draw_details(lines: np.ndarray, edges: np.ndarray, map_x: np.ndarray, map_y: np.ndarray,
                  garment: np.ndarray, count: int, rng: np.random.Generator, size: int,
                  reference_size: int) -> None:
    """Up to `count` of the longest interior lines of the edge map, warped like the garment and
    added as centre lines (a neckline, a fly, a zip: what people do draw inside)."""
    warped = ink_of(remap_lines(edges, map_x, map_y))
    band = max(2, int(round(6 * size / float(reference_size))))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    inner = cv2.erode(garment.astype(np.uint8), disc) > 0
    centre = skeleton(warped & inner)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(centre.astype(np.uint8), connectivity=8)
    if n <= 1:
        return
    sizes = stats[1:, cv2.CC_STAT_AREA]
    long_enough = np.nonzero(sizes >= max(6, size // 16))[0] + 1
    if len(long_enough) == 0:
        return
    weights = sizes[long_enough - 1].astype(np.float64)
    chosen = rng.choice(long_enough, size=min(count, len(long_enough)), replace=False, p=weights / weights.sum())
    lines[np.isin(labels, chosen)] = 1


def _recut(photo: np.ndarray, garment: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The photo's garment cut to `region` on white: where the drawing reaches past the real
    garment, the nearest garment pixel's colour fills in (texture extended, never backdrop).

    The texture is taken from a little inside the garment's edge, where the photo's pixels are
    not yet blended with the white backdrop (else every doodle grows a pale rim, and the hint
    simulation paints the pale colour in as a region of its own)."""
    out = np.full_like(photo, 255)
    inner = cv2.erode(garment.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    source = inner if inner.sum() >= 16 else garment
    if not source.any():
        return out
    _, labels = cv2.distanceTransformWithLabels((~source).astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(source)
    lookup = np.zeros(labels.max() + 1, np.int64)
    lookup[labels[ys, xs]] = ys * source.shape[1] + xs
    nearest = lookup[labels].reshape(-1)
    extended = photo.reshape(-1, 3)[nearest].reshape(photo.shape)
    filled = np.where(source[..., None], photo, extended)
    out[region] = filled[region]
    return out


def doodle_from_params(cfg: Mapping[str, Any] | None) -> tuple[float, DoodleStyle]:
    """params.yaml `train.doodle` ({share, and any DoodleStyle key}) -> (share of training
    sketches drawn as doodles, the training style). Absent: no doodles."""
    cfg = dict(cfg or {})
    share = float(cfg.pop("share", 0.0))
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"train.doodle.share must be within 0..1, got {share}")
    return share, DoodleStyle.from_mapping(cfg, TRAIN_STYLE)
