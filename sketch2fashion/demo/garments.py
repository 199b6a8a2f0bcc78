"""Garment silhouettes as labelled polygons: one layout function per category, pure in the spec.

Geometry lives in "garment units" (about one unit = a torso's length) with y pointing down; the
renderer fits each layout into the frame. Every part carries a region name a shop would colour
separately (body, sleeve, collar, cuff, waistband, brim...), so colour-blocks and contrast trims
have somewhere to go, and `Line`s add the seams, stitching and folds that make a photo's edge map
show interior lines rather than an outline alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

# Categorical silhouette choices per category; the first value of each is the default.
CUT_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "top": {
        "sleeve": ("short", "long", "sleeveless"),
        "neckline": ("crew", "v", "scoop"),
        "pocket": ("none", "chest"),
    },
    "pants": {
        "leg": ("straight", "skinny", "wide"),
        "length": ("full", "cropped", "shorts"),
        "hem": ("plain", "turn-up"),
    },
    "skirt": {
        "length": ("midi", "mini", "maxi"),
        "flare": ("a-line", "pencil", "circle"),
        "pleats": ("none", "pleated"),
    },
    "hat": {
        "style": ("cap", "beanie", "bucket", "fedora", "top-hat"),
        "cuff": ("none", "cuffed"),
        "pompom": ("none", "pompom"),
    },
}
CATEGORIES: tuple[str, ...] = tuple(CUT_OPTIONS)

# Region names; a region's label in the rasterised map is its index + 1 (0 is background).
REGIONS: tuple[str, ...] = (
    "body", "sleeve", "inside", "collar", "cuff", "pocket", "waistband", "loop", "stripe",
    "tier", "button", "crown", "brim", "band", "pompom",
)


@dataclass(frozen=True)
class GarmentSpec:
    """Everything needed to render one product deterministically (silhouette, colours, pattern)."""

    category: str
    cut: tuple[tuple[str, str], ...] = ()  # (option, value) pairs from CUT_OPTIONS[category]
    width: float = 1.0                     # relative body width, about 0.88-1.12
    length: float = 1.0                    # relative length within the cut's length class
    color: str = "white"                   # palette name of the main colour
    accent: str = "navy"                   # palette name of stripes, dots, blocks and trims
    pattern: str = "solid"                 # solid | stripes | dots | colorblock
    pattern_period: float = 0.1            # stripe / dot spacing, garment units
    pattern_angle: float = 0.0             # stripe angle, degrees (0 = horizontal)
    pattern_fill: float = 0.4              # stripe duty cycle or dot radius / spacing
    contrast_trim: bool = False            # collar, cuffs, waistband... in the accent colour
    detail_seed: int = 0                   # fold placement and fabric noise

    def style(self, option: str) -> str:
        """The value chosen for a cut option, or that option's default when the spec omits it."""
        options = check_category(self.category)
        if option not in options:
            raise ValueError(f"{self.category!r} has no cut option {option!r}; known: {sorted(options)}")
        value = dict(self.cut).get(option, options[option][0])
        if value not in options[option]:
            raise ValueError(f"{option}={value!r} is not one of {options[option]}")
        return value


@dataclass(frozen=True)
class Part:
    """A filled region of the garment, drawn in order (later parts cover earlier ones)."""

    region: str
    polygon: np.ndarray          # (N, 2) points, garment units
    within: bool = False         # True: only recolours the silhouette drawn so far (bands, panels)


@dataclass(frozen=True)
class Line:
    """A construction line: a sharp seam, dashed stitching, or a soft fold shadow / highlight."""

    points: np.ndarray           # (N, 2) polyline, garment units
    kind: str = "seam"           # seam | stitch | fold
    strength: float = 1.0        # > 0 darkens, < 0 lightens (a fold's lit ridge)
    width: float = 0.006         # garment units (seams are drawn at least one pixel wide)


@dataclass(frozen=True)
class Layout:
    parts: tuple[Part, ...]
    lines: tuple[Line, ...]


def check_category(category: str) -> dict[str, tuple[str, ...]]:
    """Cut options of a category; a ValueError naming the known categories otherwise."""
    if category not in CUT_OPTIONS:
        raise ValueError(f"unknown garment category {category!r}; known: {', '.join(CATEGORIES)}")
    return CUT_OPTIONS[category]


def sample_cut(category: str, rng: np.random.Generator) -> tuple[tuple[str, str], ...]:
    """Pick a silhouette: one value per cut option, skipping options that do not apply."""
    options = check_category(category)
    cut = {name: str(rng.choice(values)) for name, values in options.items()}
    if category == "hat" and cut["style"] != "beanie":
        cut["cuff"], cut["pompom"] = "none", "none"
    if category == "pants" and cut["length"] == "shorts":
        cut["hem"] = "plain"
    if category == "skirt" and cut["flare"] != "a-line":
        cut["pleats"] = "none"
    return tuple(cut.items())


def garment_layout(spec: GarmentSpec) -> Layout:
    """Parts and lines of the garment described by `spec`, in garment units."""
    check_category(spec.category)
    return _LAYOUTS[spec.category](spec, np.random.default_rng(spec.detail_seed))


# ---------------------------------------------------------------- geometry helpers

def _curve(*points: tuple[float, float], n: int = 24) -> np.ndarray:
    """Bezier curve through its control points (endpoints are hit exactly)."""
    pts = np.asarray(points, dtype=np.float64)
    degree = len(pts) - 1
    t = np.linspace(0.0, 1.0, n)[:, None]
    weights = [math.comb(degree, i) * t**i * (1 - t) ** (degree - i) for i in range(degree + 1)]
    return sum(w * p for w, p in zip(weights, pts))


def _normals(curve: np.ndarray) -> np.ndarray:
    """Unit normals (tangent turned a quarter clockwise on screen: a left-to-right curve -> down)."""
    tangent = np.gradient(curve, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-12
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def _offset(curve: np.ndarray, distance: float) -> np.ndarray:
    return curve + _normals(curve) * distance


def _band(curve: np.ndarray, width: float) -> np.ndarray:
    """Polygon of a strip of `width` along `curve` (on its normal side)."""
    return np.concatenate([curve, _offset(curve, width)[::-1]])


def _ellipse(cx: float, cy: float, rx: float, ry: float, t0: float = 0.0,
             t1: float = 2 * math.pi, n: int = 48) -> np.ndarray:
    t = np.linspace(t0, t1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _flip(points: np.ndarray) -> np.ndarray:
    """Left-right mirror image about x = 0, point order kept."""
    return np.asarray(points, dtype=np.float64) * np.array([-1.0, 1.0])


def _mirror(points: np.ndarray) -> np.ndarray:
    """Left-right mirror image, reversed so a traced outline keeps its direction."""
    return _flip(points)[::-1]


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _join(*pieces: np.ndarray | tuple[float, float]) -> np.ndarray:
    return np.concatenate([np.atleast_2d(np.asarray(p, dtype=np.float64)) for p in pieces])


def _fold(rng: np.random.Generator, start: tuple[float, float], end: tuple[float, float],
          width: float, strength: float, bend: float = 0.04) -> Line:
    """A soft fold between two points, bowed a little at random so folds never look ruled."""
    (x0, y0), (x1, y1) = start, end
    mid = ((x0 + x1) / 2 + rng.uniform(-bend, bend), (y0 + y1) / 2 + rng.uniform(-bend, bend))
    return Line(_curve(start, mid, end, n=16), "fold", strength, width)


# ---------------------------------------------------------------- tops

_NECK_DEPTH = {"crew": 0.10, "scoop": 0.22, "v": 0.30}


def _top(spec: GarmentSpec, rng: np.random.Generator) -> Layout:
    sleeve, neckline = spec.style("sleeve"), spec.style("neckline")
    w, hem_y = spec.width, 0.98 * spec.length
    neck = 0.12
    chest = 0.37 * w
    hem_x = chest * rng.uniform(0.97, 1.06)
    shoulder = (neck + 0.10, 0.05) if sleeve == "sleeveless" else (0.41 * w, 0.07)
    armpit = (chest, 0.36) if sleeve == "sleeveless" else (chest, 0.31)

    if sleeve == "sleeveless":
        armhole = _curve(shoulder, (shoulder[0] + 0.01, 0.26), (chest - 0.02, armpit[1]), armpit, n=20)
    else:
        armhole = _curve(shoulder, armpit, n=2)
    side = _curve(armpit, (chest * 0.95, 0.3 + 0.4 * hem_y), (hem_x, hem_y), n=20)
    hem = _curve((hem_x, hem_y), (0.0, hem_y + 0.025), (-hem_x, hem_y), n=20)
    back_neck = _curve((-neck, 0.0), (0.0, 0.07), (neck, 0.0), n=16)
    right = _join((neck, 0.0), armhole, side[1:])
    body = _join(right, hem[1:-1], _mirror(right)[:-1], back_neck)

    depth = _NECK_DEPTH[neckline]
    if neckline == "v":
        front_halves = [_curve((-neck, 0.0), (0.0, depth), n=8), _curve((0.0, depth), (neck, 0.0), n=8)]
        front_neck = _join(front_halves[0], front_halves[1][1:])
    else:
        front_neck = _curve((-neck, 0.0), (-neck * 0.9, depth), (neck * 0.9, depth), (neck, 0.0), n=24)
        front_halves = [front_neck]

    parts: list[Part] = []
    lines: list[Line] = []
    if sleeve != "sleeveless":
        parts_r, lines_r = _sleeve(shoulder, armpit, sleeve, spec, rng)
        parts += parts_r + [Part(p.region, _mirror(p.polygon), p.within) for p in parts_r]
        lines += lines_r + [Line(_mirror(l.points), l.kind, l.strength, l.width) for l in lines_r]
    parts.append(Part("body", body))
    parts.append(Part("inside", _join(back_neck, front_neck[::-1]), within=True))
    parts += [Part("collar", _band(half, 0.035)) for half in front_halves]
    parts.append(Part("collar", _band(back_neck, 0.022), within=True))
    if sleeve == "sleeveless":
        for hole in (armhole, _mirror(armhole)):  # both run so that +normal points into the body
            parts.append(Part("collar", _band(hole, 0.028), within=True))
    if spec.style("pocket") == "chest":
        px, py = -0.19 * w, 0.28 if depth > 0.2 else 0.24
        pocket = np.array([[px - 0.06, py], [px + 0.06, py], [px + 0.06, py + 0.12],
                           [px, py + 0.145], [px - 0.06, py + 0.12]])
        parts.append(Part("pocket", pocket, within=True))
        lines.append(Line(_join(pocket, pocket[:1]) * 0.86 + pocket.mean(0) * 0.14, "stitch", 0.6))
        lines.append(Line(np.array([[px - 0.06, py + 0.018], [px + 0.06, py + 0.018]]), "stitch", 0.5))

    lines.append(Line(_curve((-neck, 0.0), (-shoulder[0], shoulder[1]), n=2), "seam", 0.6))
    lines.append(Line(_curve((neck, 0.0), shoulder, n=2), "seam", 0.6))
    hem_stitch = _offset(hem[::-1], -0.04)[2:-2]
    lines.append(Line(hem_stitch, "stitch", 0.7))
    lines.append(Line(_offset(hem[::-1], -0.052)[2:-2], "stitch", 0.5))
    for _ in range(rng.integers(2, 5)):
        x0 = rng.uniform(-0.8, 0.8) * chest
        lines.append(_fold(rng, (x0, rng.uniform(0.35, 0.55)), (x0 * 1.1 + rng.uniform(-0.05, 0.05),
                           hem_y - 0.05), 0.05, rng.choice([0.8, -0.7])))
    for sgn in (-1, 1):  # drape from the armpits toward the middle
        lines.append(_fold(rng, (sgn * chest * 0.9, armpit[1] + 0.04),
                           (sgn * chest * 0.35, armpit[1] + 0.22), 0.035, 0.6))
    return Layout(tuple(parts), tuple(lines))


def _sleeve(shoulder: tuple[float, float], armpit: tuple[float, float], sleeve: str,
            spec: GarmentSpec, rng: np.random.Generator) -> tuple[list[Part], list[Line]]:
    """The right sleeve as parts and lines; the caller mirrors it for the left."""
    angle = math.radians(rng.uniform(28, 38) if sleeve == "short" else rng.uniform(62, 70))
    length = 0.30 if sleeve == "short" else 0.80 * spec.length
    half = 0.115 if sleeve == "short" else 0.068
    direction = np.array([math.cos(angle), math.sin(angle)])
    outward = np.array([math.sin(angle), -math.cos(angle)])
    root = (np.asarray(shoulder) + np.asarray(armpit)) / 2
    end = root + direction * length
    top, bottom = end + outward * half, end - outward * half
    outer = _curve(shoulder, (np.asarray(shoulder) + top) / 2 + outward * 0.015, top, n=12)
    polygon = _join(outer, bottom, armpit)
    parts = [Part("sleeve", polygon)]
    lines: list[Line] = []
    if sleeve == "long":
        cuff = _join(top, bottom, bottom - direction * 0.09, top - direction * 0.09)
        parts.append(Part("cuff", cuff, within=True))
        elbow = root + direction * length * 0.55
        for k in range(2):
            c = elbow + direction * 0.07 * k
            lines.append(_fold(rng, tuple(c + outward * half * 0.9), tuple(c - outward * half * 1.2
                               + direction * 0.04), 0.03, 0.7, bend=0.015))
    else:
        edge = np.stack([top, bottom]) - direction * 0.035
        lines.append(Line(edge, "stitch", 0.7))
        lines.append(_fold(rng, tuple(root + outward * 0.05), tuple(end - direction * 0.06), 0.035, 0.5))
    return parts, lines


# ---------------------------------------------------------------- pants

_LEG_HEM_HALF = {"skinny": 0.085, "straight": 0.145, "wide": 0.27}
_PANTS_LENGTH = {"shorts": 0.52, "cropped": 1.12, "full": 1.42}


def _pants(spec: GarmentSpec, rng: np.random.Generator) -> Layout:
    leg, length, w = spec.style("leg"), spec.style("length"), spec.width
    waist, band_h, rise = 0.33 * w, 0.075, 0.40
    hip_y, hip = 0.26, 0.33 * w + 0.045
    full_y = _PANTS_LENGTH["full"] * spec.length
    hem_y = _PANTS_LENGTH[length] * (spec.length if length != "shorts" else 1.0)
    thigh_c, thigh_half = hip / 2, hip / 2
    full_half = _LEG_HEM_HALF[leg] * w
    full_c = max(thigh_c + 0.05, full_half + 0.035)
    reach = (hem_y - rise) / (full_y - rise)
    widen = max(reach, 0.55) if length == "shorts" else reach
    hem_c = thigh_c + reach * (full_c - thigh_c)
    hem_half = thigh_half + widen * (full_half - thigh_half)
    outer_hem, inner_hem = (hem_c + hem_half, hem_y), (hem_c - hem_half, hem_y)

    knee = rise + 0.55 * (full_y - rise)
    knee_half = thigh_half + 0.55 * (full_half - thigh_half) * (0.6 if leg == "skinny" else 1.0)
    knee_c = thigh_c + 0.55 * (full_c - thigh_c)
    if hem_y > knee + 0.05:
        outer = _curve((hip, hip_y), (knee_c + knee_half, knee), outer_hem, n=20)
        inner = _curve(inner_hem, (knee_c - knee_half, knee), (0.012, rise + 0.04), n=20)
    else:
        outer = _curve((hip, hip_y), outer_hem, n=4)
        inner = _curve(inner_hem, (0.012, rise + 0.04), n=4)
    right = _join(_curve((waist, 0.0), (hip - 0.005, 0.12), (hip, hip_y), n=10)[:-1], outer, inner)
    body = _join(right, (0.0, rise), _mirror(right))
    parts = [Part("body", body)]
    lines: list[Line] = []

    pocket_top, pocket_side = (waist - 0.11, band_h), (hip + 0.001, 0.21)
    pocket_line = _curve(pocket_top, (waist - 0.05, 0.17), pocket_side, n=12)
    for sgn in (1, -1):  # right leg, then the same details flipped onto the left
        side = (lambda p: np.asarray(p, dtype=np.float64)) if sgn > 0 else _flip
        parts.append(Part("pocket", side(_join(pocket_line, (hip + 0.1, 0.1), (waist + 0.1, 0.0))),
                          within=True))
        lines.append(Line(side(_offset(pocket_line, -0.018)), "stitch", 0.6))
        crease_top = (sgn * thigh_c, hip_y + 0.12)
        lines.append(Line(_curve(crease_top, (sgn * hem_c, hem_y - 0.03), n=8), "fold", -0.6, 0.012))
        if spec.pattern == "colorblock":
            parts.append(Part("stripe", side(_band(outer[::-1], -0.045)), within=True))
        if length != "shorts" and spec.style("hem") == "turn-up":  # cuff a little wider than the leg
            cuff = _join((outer_hem[0] + 0.012, hem_y + 0.005), (inner_hem[0] - 0.012, hem_y + 0.005),
                         (inner_hem[0] - 0.012, hem_y - 0.085), (outer_hem[0] + 0.012, hem_y - 0.085))
            parts.append(Part("cuff", side(cuff)))
        else:
            lines.append(Line(side(np.array([outer_hem, inner_hem])) - [0, 0.035], "stitch", 0.7))
        for _ in range(rng.integers(1, 4)):  # wrinkles across the leg
            y = rng.uniform(rise + 0.05, max(rise + 0.06, hem_y - 0.1))
            f = (y - rise) / max(full_y - rise, 1e-6)
            c, h = thigh_c + f * (full_c - thigh_c), thigh_half + f * (full_half - thigh_half)
            x0 = c + h * rng.uniform(-0.8, 0.1)
            x1, y1 = x0 + h * rng.uniform(0.4, 0.8), y + rng.uniform(-0.06, 0.06)
            lines.append(_fold(rng, (sgn * x0, y), (sgn * x1, y1), 0.035, rng.choice([0.5, -0.5]), bend=0.03))

    parts.append(Part("waistband", _rect(-0.6, -0.1, 0.6, band_h), within=True))
    for x in (-waist + 0.055, -0.13, 0.13, waist - 0.055):
        parts.append(Part("loop", _rect(x - 0.014, -0.008, x + 0.014, band_h + 0.018)))
    parts.append(Part("button", _ellipse(0.0, band_h / 2, 0.02, 0.02, n=20)))
    fly = _curve((0.055, band_h), (0.055, 0.25), (0.045, 0.29), (0.0, 0.30), n=16)
    lines.append(Line(fly, "stitch", 0.8))
    lines.append(Line(_curve((0.0, band_h), (0.0, rise), n=2), "seam", 0.8))
    lines.append(Line(_curve((-0.6, band_h * 0.25), (0.6, band_h * 0.25), n=2), "stitch", 0.5))
    lines.append(Line(_curve((-0.6, band_h * 0.8), (0.6, band_h * 0.8), n=2), "stitch", 0.5))
    return Layout(tuple(parts), tuple(lines))


# ---------------------------------------------------------------- skirts

_SKIRT_LENGTH = {"mini": 0.44, "midi": 0.82, "maxi": 1.18}


def _skirt(spec: GarmentSpec, rng: np.random.Generator) -> Layout:
    flare, w = spec.style("flare"), spec.width
    hem_y = _SKIRT_LENGTH[spec.style("length")] * spec.length
    waist, band_h, hip_y = 0.29 * w, 0.07, 0.22
    hip = waist + 0.065
    if flare == "pencil":
        hem_half = hip - 0.02
        side = _join(_curve((waist, 0.0), (hip + 0.005, 0.10), (hip, hip_y), n=12),
                     _curve((hip, hip_y), (hip - 0.005, (hip_y + hem_y) / 2), (hem_half, hem_y), n=12)[1:])
        hem = _curve((hem_half, hem_y), (-hem_half, hem_y), n=2)
    elif flare == "a-line":
        hem_half = hip + 0.36 * hem_y
        side = _curve((waist, 0.0), (hip - 0.01, 0.12), (hem_half, hem_y), n=20)
        hem = _curve((hem_half, hem_y), (0.0, hem_y + 0.05), (-hem_half, hem_y), n=24)
    else:
        hem_half = hip + 0.6 * hem_y
        side = _curve((waist, 0.0), (waist + 0.08, 0.03), (hem_half, hem_y - 0.12 * hem_y), n=24)
        x = np.linspace(hem_half, -hem_half, 60)
        waves = rng.integers(5, 8)
        hem = np.stack([x, hem_y - 0.12 * hem_y * (x / hem_half) ** 2
                        + 0.025 * np.sin(x / hem_half * math.pi * waves + rng.uniform(0, 6))], axis=1)
        hem[0], hem[-1] = side[-1], side[-1] * [-1, 1]
    outline = _join(side, hem[1:-1], _mirror(side))
    parts = [Part("body", outline)]
    lines: list[Line] = []
    if spec.pattern == "colorblock":
        parts.append(Part("tier", _rect(-2, hip_y + 0.62 * (hem_y - hip_y), 2, hem_y + 0.3), within=True))
    parts.append(Part("waistband", _rect(-1, -0.1, 1, band_h), within=True))
    parts.append(Part("button", _ellipse(waist - 0.05, band_h / 2, 0.017, 0.017, n=20)))
    lines.append(Line(_offset(hem, 0.035)[1:-1], "stitch", 0.7))
    lines.append(Line(_curve((-1, band_h * 0.5), (1, band_h * 0.5), n=2), "stitch", 0.4))

    if flare == "pencil":
        lines.append(Line(_curve((0.0, hem_y), (0.0, hem_y - min(0.2, 0.35 * hem_y)), n=2), "seam", 1.0))
        for sgn in (-1, 1):
            lines.append(Line(_curve((sgn * waist * 0.5, band_h), (sgn * waist * 0.52, band_h + 0.13), n=2),
                              "seam", 0.7))
            lines.append(_fold(rng, (sgn * hip * 0.5, hip_y + 0.05), (sgn * hip * 0.3, hem_y - 0.04),
                               0.04, 0.5, bend=0.02))
    else:
        n_folds = 3 if flare == "a-line" else 7
        for k in range(n_folds):
            t = (k + 0.5) / n_folds * 2 - 1 + rng.uniform(-0.08, 0.08)
            start = (t * waist * 0.8, band_h + 0.04)
            end = (t * hem_half * 0.92, hem[int((1 - t) / 2 * (len(hem) - 1))][1] - 0.02)
            lines.append(_fold(rng, start, end, 0.05 if flare == "circle" else 0.04, rng.choice([0.9, -0.7])))
        if spec.style("pleats") == "pleated":
            for t in np.linspace(-0.8, 0.8, 7):
                pleat = _curve((t * waist, band_h), (t * hem_half * 0.97, hem_y + 0.05 * (1 - t * t)))
                lines.append(Line(pleat, "seam", 0.7))
        else:
            lines.append(Line(_curve((0.0, band_h), (0.0, hem_y + (0.05 if flare == "a-line" else 0.0)), n=2),
                              "seam", 0.5))
    return Layout(tuple(parts), tuple(lines))


# ---------------------------------------------------------------- hats

def _hat(spec: GarmentSpec, rng: np.random.Generator) -> Layout:
    layouts = {"cap": _cap, "beanie": _beanie, "bucket": _bucket, "fedora": _fedora, "top-hat": _top_hat}
    return layouts[spec.style("style")](spec, rng)


def _cap(spec: GarmentSpec, rng: np.random.Generator) -> Layout:
    """Baseball cap seen from the front-left, visor pointing out to the left."""
    w = spec.width
    rx, ry = 0.5 * w, 0.5
    crown_base = _curve((0.5 * w, 0.0), (0.0, 0.07), (-0.5 * w, 0.0), n=24)
    dome = _ellipse(0.0, 0.0, rx, ry, math.pi, 2 * math.pi, n=40)[::-1]
    crown = _join(dome[::-1], crown_base[1:-1])
    top = (0.06 * w, -ry + 0.005)
    seam = crown_base[crown_base[:, 0] <= 0.3 * w] - [0.0, 0.012]  # visor meets the crown here
    visor_outer = _curve(tuple(seam[0]), (0.05, 0.28), (-0.62 * w, 0.30), (-0.92 * w, 0.08), n=28)
    visor = _join(visor_outer, (-0.6 * w, -0.01), seam[::-1])
    parts = [Part("crown", crown), Part("brim", visor),
             Part("band", _band(crown_base, 0.035), within=True),
             Part("band", _ellipse(top[0], top[1] - 0.005, 0.045, 0.022, n=20))]
    lines: list[Line] = []
    for base_x in (-0.32, 0.06, 0.40):
        bx = base_x * w
        by = 0.07 * (1 - (bx / (0.5 * w)) ** 2) - 0.035
        lines.append(Line(_curve(top, (bx * 0.95 + 0.02, -0.3), (bx, by), n=20), "seam", 0.9))
        lines.append(Line(_curve((top[0] + 0.02, top[1]), (bx * 0.95 + 0.045, -0.3), (bx + 0.025, by), n=20),
                          "stitch", 0.5))
    for ex in (-0.2, 0.24):
        parts.append(Part("band", _ellipse(ex * w, -0.36, 0.014, 0.011, n=12)))
    for k in range(4):
        lines.append(Line(_offset(visor_outer, 0.03 + 0.022 * k)[2:-2], "stitch", 0.5))
    lines.append(_fold(rng, (-0.3 * w, -0.2), (0.1 * w, -0.4), 0.12, -0.9, bend=0.02))
    lines.append(Line(_curve((0.3 * w, -0.05), (0.45 * w, -0.2), n=4), "fold", 0.6, 0.08))
    return Layout(tuple(parts), tuple(lines))


def _beanie(spec: GarmentSpec, rng: np.random.Generator) -> Layout:
    w = spec.width
    half = 0.42 * w
    cuffed, pompom = spec.style("cuff") == "cuffed", spec.style("pompom") == "pompom"
    bottom = 0.55 * spec.length
    dome = _ellipse(0.0, -0.1, half, 0.42, math.pi, 2 * math.pi, n=40)
    sides = _curve((half, -0.1), (half * 1.02, 0.25), (half * 0.98, bottom), n=12)
    hem = _curve((half * 0.98, bottom), (0.0, bottom + 0.03), (-half * 0.98, bottom), n=16)
    body = _join(dome, sides[1:], hem[1:], _mirror(sides)[:-1])
    parts = [Part("body", body)]
    lines: list[Line] = []
    ribs = np.linspace(-half * 0.92, half * 0.92, 15)
    for x in ribs:
        lines.append(Line(_curve((x * 0.35, -0.48), (x, -0.2), (x, bottom), n=16), "seam", 0.28, 0.008))
    if cuffed:
        cuff_top = bottom - 0.27
        low = bottom + 0.005
        cuff = _join(_curve((-half * 1.04, cuff_top), (0.0, cuff_top + 0.03), (half * 1.04, cuff_top), n=16),
                     _curve((half * 1.03, low), (0.0, low + 0.03), (-half * 1.03, low), n=16))
        parts.append(Part("cuff", cuff))
        for x in np.linspace(-half * 0.95, half * 0.95, 19):
            lines.append(Line(_curve((x, cuff_top + 0.03), (x, bottom), n=2), "seam", 0.4, 0.008))
        shadow = _curve((-half * 0.9, cuff_top - 0.02), (0.0, cuff_top + 0.01), (half * 0.9, cuff_top - 0.02))
        lines.append(Line(shadow, "fold", 0.8, 0.03))  # the turned-up cuff shades the knit above it
    else:
        hem_stitch = _curve((-half, bottom - 0.04), (0.0, bottom - 0.01), (half, bottom - 0.04))
        lines.append(Line(hem_stitch, "stitch", 0.5))
    if pompom:
        angles = np.linspace(0, 2 * math.pi, 90, endpoint=False)
        radius = 0.17 * (1 + 0.05 * rng.standard_normal(90).cumsum().clip(-1, 1) * 0.2
                         + 0.04 * rng.uniform(-1, 1, 90))
        blob = np.stack([radius * np.cos(angles), -0.62 + radius * np.sin(angles)], axis=1)
        parts.append(Part("pompom", blob))
    lines.append(_fold(rng, (-half * 0.6, -0.3), (-half * 0.2, 0.1), 0.1, -0.8, bend=0.02))
    return Layout(tuple(parts), tuple(lines))


def _bucket(spec: GarmentSpec, rng: np.random.Generator) -> Layout:
    w = spec.width
    top_half, base_half, top_y = 0.29 * w, 0.37 * w, -0.42 * spec.length
    crown_side = _curve((top_half - 0.04, top_y), (top_half + 0.01, top_y + 0.01),
                        (top_half + 0.02, top_y + 0.06), (base_half, 0.02), n=16)
    hidden_base = _curve((base_half, 0.02), (0.0, 0.16), (-base_half, 0.02), n=16)[1:-1]  # under the brim
    crown = _join(_mirror(crown_side), crown_side, hidden_base)
    brim_half, brim_y = 0.64 * w, 0.26
    brim_outer = _curve((base_half - 0.01, 0.0), (brim_half, brim_y - 0.04), (brim_half * 0.6, brim_y + 0.12),
                        (0.0, brim_y + 0.12), n=20)
    brim_top = _curve((-base_half + 0.01, 0.0), (0.0, 0.10), (base_half - 0.01, 0.0), n=20)
    brim = _join(brim_top, brim_outer[1:], _mirror(brim_outer)[1:-1])
    band_curve = _curve((-base_half - 0.02, -0.02), (0.0, 0.08), (base_half + 0.02, -0.02), n=20)
    parts = [Part("crown", crown), Part("band", _band(band_curve, -0.07), within=True), Part("brim", brim)]
    lines: list[Line] = []
    top_seam = _curve((-top_half + 0.02, top_y + 0.07), (0.0, top_y + 0.11), (top_half - 0.02, top_y + 0.07))
    lines.append(Line(top_seam, "seam", 0.8))
    outline = _join(brim_outer, _mirror(brim_outer)[1:])
    for k in range(5):
        lines.append(Line(_offset(outline, 0.025 + 0.03 * k)[3:-3], "stitch", 0.5))
    lines.append(Line(_offset(band_curve, -0.012), "stitch", 0.5))
    for x in (-0.2, 0.2):
        lines.append(Line(_curve((x * w, top_y + 0.1), (x * 1.1 * w, -0.05), n=2), "seam", 0.4))
    lines.append(_fold(rng, (-0.22 * w, top_y + 0.12), (-0.1 * w, -0.1), 0.09, -0.8, bend=0.02))
    lines.append(_fold(rng, (0.25 * w, 0.12), (0.45 * w, 0.2), 0.05, 0.6, bend=0.02))
    return Layout(tuple(parts), tuple(lines))


def _fedora(spec: GarmentSpec, rng: np.random.Generator) -> Layout:
    """A brimmed hat from the front: a pinched crown over a wide brim whose sides turn up (a
    fedora, or a cowboy hat when the sides turn up far); what many people draw for "hat"."""
    w = spec.width
    base_half, top_half, top_y = 0.36 * w, 0.30 * w, -0.58 * spec.length
    up = rng.uniform(0.02, 0.16)  # how far the brim's sides turn up
    side = _curve((base_half, 0.02), (base_half * 1.02, -0.2), (top_half, top_y + 0.08), n=14)
    crown_top = _curve((top_half, top_y + 0.08), (0.16 * w, top_y - 0.02), (0.0, top_y + 0.09),
                       (-0.16 * w, top_y - 0.02), (-top_half, top_y + 0.08), n=24)
    crown = _join(side, crown_top[1:], _mirror(side)[1:])
    brim_half = 0.78 * w
    brim_top = _curve((-brim_half, -up), (-0.4 * w, 0.04), (0.0, 0.06), (0.4 * w, 0.04), (brim_half, -up), n=28)
    brim_low = _curve((brim_half, -up + 0.05), (0.45 * w, 0.20), (0.0, 0.22), (-0.45 * w, 0.20),
                      (-brim_half, -up + 0.05), n=28)
    brim = _join(brim_top, brim_low)
    band_curve = _curve((-base_half - 0.01, -0.06), (0.0, -0.02), (base_half + 0.01, -0.06), n=20)
    parts = [Part("crown", crown), Part("band", _band(band_curve, -0.08), within=True), Part("brim", brim)]
    lines = [Line(_curve((0.0, top_y + 0.1), (0.02, top_y + 0.22), n=6), "fold", 0.8, 0.02),
             Line(_offset(brim_low, -0.03)[2:-2], "stitch", 0.5),
             _fold(rng, (-0.2 * w, top_y + 0.15), (-0.25 * w, -0.15), 0.08, -0.8, bend=0.02)]
    return Layout(tuple(parts), tuple(lines))


def _top_hat(spec: GarmentSpec, rng: np.random.Generator) -> Layout:
    """A top hat from the front: a tall straight crown over a narrow flat brim."""
    w = spec.width
    half, top_y = 0.30 * w, -0.95 * spec.length
    side = _curve((half, 0.0), (half * 0.96, top_y * 0.5), (half * 1.06, top_y), n=12)
    crown = _join(side, _mirror(side))
    brim_half = 0.56 * w
    brim = _join(_curve((-brim_half, -0.05), (-0.3 * w, 0.02), (0.3 * w, 0.02), (brim_half, -0.05), n=24),
                 _curve((brim_half, -0.01), (0.3 * w, 0.10), (-0.3 * w, 0.10), (-brim_half, -0.01), n=24))
    band = _rect(-half * 1.01, -0.2, half * 1.01, -0.02)
    parts = [Part("crown", crown), Part("band", band, within=True), Part("brim", brim)]
    lines = [Line(_curve((-half * 1.04, top_y + 0.03), (0.0, top_y + 0.07), (half * 1.04, top_y + 0.03), n=16),
                  "seam", 0.6),
             _fold(rng, (0.12 * w, top_y + 0.1), (0.1 * w, -0.25), 0.06, -0.9, bend=0.01)]
    return Layout(tuple(parts), tuple(lines))


_LAYOUTS: dict[str, Callable[[GarmentSpec, np.random.Generator], Layout]] = {
    "top": _top, "pants": _pants, "skirt": _skirt, "hat": _hat,
}
