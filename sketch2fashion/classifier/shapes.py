"""Garments drawn from simple templates: a shape prior for the classifier that no catalog supplies.

A classifier trained only on a catalog's products learns that catalog's cuts: the demo's tops
hang their sleeves, its hats are five styles, and a real shop may sell no shorts at all. People
draw the *idea* of a garment: a T with sleeves straight out, a jacket with a zip down the middle,
trousers as two tubes, a cowboy hat as a dented crown on a curled brim. `garment_shape` makes such
an idea from a handful of parameters per category, sampled far wider than any catalog's spread
(sleeves from straight out to hanging, shorts to long trousers, eight kinds of hat), as a mask
with its interior lines (zip, waistband, hat band...) and a flat-coloured "photo" for hints. The
doodle synthesis (`colorizer/doodle.py`) then draws it exactly as it draws a product: one quick
outline, gaps, wobble, pen width. Nothing here comes from a dataset, so the prior is the same for
the demo, a real shop and any category set that contains these names.

Coordinates are garment units (y down); `garment_shape` fits them into the canvas.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from sketch2fashion.imaging.edges import INK, PAPER

Poly = np.ndarray  # K x 2 float, garment units


@dataclass(frozen=True)
class Shape:
    """One template garment at `size`: mask 0/255, interior lines (0 ink / 255 paper), flat photo."""

    mask: np.ndarray
    edges: np.ndarray
    photo: np.ndarray


@dataclass
class _Drawing:
    """Parts (filled), holes (cut out after) and interior lines, in garment units."""

    parts: list[Poly]
    holes: list[Poly]
    lines: list[Poly]


def _arc(cx: float, cy: float, rx: float, ry: float, t0: float, t1: float, n: int = 16) -> Poly:
    t = np.linspace(np.deg2rad(t0), np.deg2rad(t1), n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _mirror_x(points: Poly) -> Poly:
    return points * np.array([-1.0, 1.0])


def _top(rng: np.random.Generator) -> _Drawing:
    """Body + two sleeves at any angle from straight out to hanging; neckline cut; zip, hem, cuffs."""
    u = rng.uniform
    half, height = u(0.25, 0.45), u(0.65, 1.15)
    flare = u(-0.05, 0.08)
    drop = u(0.0, 0.12)                                   # shoulder slope
    neck, neck_depth = u(0.08, 0.16), u(0.03, 0.22)
    body = np.array([(-half, drop), (-neck, 0.0), (neck, 0.0), (half, drop),
                     (half + flare, height), (-half - flare, height)])
    parts, lines = [body], []
    if rng.random() > 0.08:                               # else sleeveless
        angle = np.deg2rad(u(0.0, 70.0))                  # below horizontal
        length = u(0.15, 0.4) if rng.random() < 0.45 else u(0.5, 1.0)
        width = u(0.16, 0.3)
        cuff = width * u(0.55, 1.05)
        out = np.array([np.cos(angle), np.sin(angle)])
        across = np.array([-np.sin(angle), np.cos(angle)])  # from the sleeve's top edge to its bottom
        shoulder = np.array([half - 0.02, drop])
        armpit = np.array([half, drop + width / max(np.cos(angle) * 0.9 + 0.1, 0.3)])
        end_top = shoulder + out * length
        end_bottom = end_top + across * cuff
        sleeve = np.array([shoulder, end_top, end_bottom, armpit])
        parts += [sleeve, _mirror_x(sleeve)]
        if rng.random() < 0.3:                            # cuffs
            inset = end_top - out * 0.06, end_bottom - out * 0.06
            lines += [np.array(inset), _mirror_x(np.array(inset))]
    kind = rng.random()
    holes = []
    if kind < 0.6:                                        # crew / scoop neck
        holes.append(_arc(0.0, 0.0, neck, neck_depth, 0, 180))
    elif kind < 0.85:                                     # V neck
        holes.append(np.array([(-neck, -0.01), (neck, -0.01), (0.0, neck_depth + 0.08)]))
    else:                                                 # collar or hood drawn up above the neck
        parts.append(_arc(0.0, 0.0, neck * u(1.0, 1.6), u(0.08, 0.3), 180, 360))
    front = rng.random()
    if front < 0.3:                                       # a jacket's zip or button line
        lines.append(np.array([(0.0, neck_depth), (0.0, height)]))
    elif front < 0.45:                                    # an open jacket: two panels apart at the hem
        spread = u(0.02, 0.12)
        holes.append(np.array([(0.0, neck_depth + u(0.08, 0.35)), (spread, height + 0.01), (-spread, height + 0.01)]))
    if rng.random() < 0.3:                                # hem band
        y = height - u(0.05, 0.12)
        lines.append(np.array([(-half - flare * 0.9, y), (half + flare * 0.9, y)]))
    if rng.random() < 0.15:                               # a chest pocket
        x, y = u(0.05, half - 0.15), u(0.2, 0.4)
        lines.append(np.array([(x, y), (x + 0.12, y), (x + 0.12, y + 0.12), (x, y + 0.12), (x, y)]))
    return _Drawing(parts, holes, lines)


def _pants(rng: np.random.Generator) -> _Drawing:
    """Two legs from a waistband, shorts to long trousers, straight, skinny or flared."""
    u = rng.uniform
    waist = u(0.28, 0.45)
    length = u(0.25, 0.65) if rng.random() < 0.5 else u(0.9, 1.5)      # shorts or trousers
    crotch = u(0.18, 0.35) * min(1.0, length / 0.9 + 0.3)
    hem = u(0.1, 0.3)                                     # one leg's width at the hem
    splay = u(-0.05, 0.12) * length
    gap = u(0.0, 0.08)
    outer = waist + splay
    inner = max(gap, outer - hem)
    leg = np.array([(-waist, 0.0), (waist, 0.0), (outer, length), (inner, length), (0.0, min(crotch, length - 0.05)),
                    (-inner, length), (-outer, length)])
    lines = []
    if rng.random() < 0.5:
        y = u(0.05, 0.1)
        lines.append(np.array([(-waist, y), (waist, y)]))
    if rng.random() < 0.3:
        lines.append(np.array([(0.0, 0.08), (0.0, crotch * 0.8)]))
    if rng.random() < 0.2:
        for sign in (-1, 1):
            lines.append(_arc(sign * waist, 0.05, 0.15, 0.15, 90 if sign > 0 else 0, 180 if sign > 0 else 90, 8))
    return _Drawing([leg], [], lines)


def _skirt(rng: np.random.Generator) -> _Drawing:
    """A waist widening to a hem: pencil to full circle, mini to maxi; straight, curved or wavy hem."""
    u = rng.uniform
    waist = u(0.2, 0.35)
    hem = waist * u(1.0, 2.4)
    length = u(0.4, 1.3)
    kind = rng.random()
    xs = np.linspace(hem, -hem, 24)
    if kind < 0.4:
        ys = np.full_like(xs, length)
    elif kind < 0.75:                                     # curved hem
        ys = length + u(0.03, 0.15) * (1 - (xs / hem) ** 2)
    else:                                                 # wavy or zigzag hem
        ys = length + u(0.02, 0.06) * np.sin(xs / hem * np.pi * rng.integers(3, 7))
    outline = np.vstack([[(-waist, 0.0), (waist, 0.0)], np.stack([xs, ys], axis=1)])
    lines = []
    if rng.random() < 0.5:
        y = u(0.05, 0.1)
        lines.append(np.array([(-waist * 1.02, y), (waist * 1.02, y)]))
    if rng.random() < 0.3:                                # pleats
        for t in np.linspace(-0.6, 0.6, int(rng.integers(2, 6))):
            lines.append(np.array([(t * waist, 0.1), (t * hem, length - 0.02)]))
    return _Drawing([outline], [], lines)


def _hat(rng: np.random.Generator) -> _Drawing:
    """Eight kinds of hat as people draw them, front or side view."""
    u = rng.uniform
    style = rng.integers(8)
    lines: list[Poly] = []
    if style == 0:                                        # top hat
        w, h, brim = u(0.3, 0.45), u(0.5, 0.9), u(0.55, 0.8)
        taper = u(-0.04, 0.05)
        parts = [np.array([(-w - taper, 0.0), (w + taper, 0.0), (w, h), (-w, h)]),
                 _arc(0.0, h, brim, u(0.04, 0.1), 0, 360, 24)]
        lines.append(np.array([(-w, h - 0.12), (w, h - 0.12)]))
    elif style == 1:                                      # cowboy: dented crown, brim curled up
        w, h, brim = u(0.25, 0.35), u(0.3, 0.5), u(0.6, 0.9)
        dent = u(0.03, 0.1)
        crown = np.vstack([[(-w, h)], _arc(-w / 2, dent + w / 2, w / 2, w / 2 + dent, 180, 360, 8),
                           _arc(w / 2, dent + w / 2, w / 2, w / 2 + dent, 180, 360, 8), [(w, h)]])
        xs = np.linspace(-brim, brim, 24)
        curl = u(0.1, 0.3)
        ys = h - 0.03 - curl * (xs / brim) ** 4              # overlaps the crown: one hat
        brim_poly = np.vstack([np.stack([xs, ys], axis=1), np.stack([xs[::-1], ys[::-1] + u(0.06, 0.12)], axis=1)])
        parts = [crown, brim_poly]
    elif style == 2:                                      # baseball cap, side view
        r = u(0.3, 0.45)
        side = rng.choice([-1.0, 1.0])
        parts = [_arc(0.0, 0.0, r, r * u(0.7, 1.0), 180, 360, 20),
                 np.array([(0.0, -0.02), (side * (r + u(0.3, 0.55)), u(0.0, 0.08)), (side * (r + 0.2), 0.08),
                           (0.0, 0.05)])]
        lines.append(np.array([(0.0, -r * 0.9), (0.0, 0.0)]))
    elif style == 3:                                      # cap from the front: dome, visor below
        r = u(0.3, 0.45)
        parts = [_arc(0.0, 0.0, r, r * u(0.7, 1.0), 180, 360, 20),
                 _arc(0.0, 0.0, r * u(0.9, 1.2), u(0.1, 0.2), 0, 180, 16)]
    elif style == 4:                                      # beanie, cuff, maybe a pompom
        r, cuff = u(0.3, 0.45), u(0.1, 0.2)
        parts = [_arc(0.0, 0.0, r, r * u(0.8, 1.3), 180, 360, 20),
                 np.array([(-r - 0.02, 0.0), (r + 0.02, 0.0), (r + 0.02, cuff), (-r - 0.02, cuff)])]
        lines.append(np.array([(-r, 0.0), (r, 0.0)]))
        if rng.random() < 0.5:
            top = -r * 0.9
            parts.append(_arc(0.0, top - 0.08, 0.1, 0.1, 0, 360, 12))
    elif style == 5:                                      # wide-brim sun hat
        r, brim = u(0.2, 0.3), u(0.6, 1.0)
        parts = [_arc(0.0, 0.0, r, r * u(0.8, 1.2), 180, 360, 16), _arc(0.0, 0.0, brim, u(0.06, 0.2), 0, 360, 32)]
        lines.append(np.array([(-r, 0.0), (r, 0.0)]))
    elif style == 6:                                      # bucket / fedora: crown on a sloped brim
        w, h, brim = u(0.25, 0.35), u(0.3, 0.5), u(0.45, 0.7)
        pinch = u(0.0, 0.08)
        parts = [np.array([(-w, 0.0), (-w * 0.8, -h), (0.0, -h + pinch), (w * 0.8, -h), (w, 0.0)]),
                 np.array([(-w, -0.05), (w, -0.05), (brim, u(0.05, 0.2)), (-brim, u(0.05, 0.2))])]
        lines.append(np.array([(-w * 0.95, -0.1), (w * 0.95, -0.1)]))
    else:                                                 # beret: a flat ellipse with a stalk
        rx, ry = u(0.4, 0.55), u(0.15, 0.25)
        parts = [_arc(0.0, 0.0, rx, ry, 0, 360, 28), np.array([(-0.02, -ry + 0.02), (0.02, -ry + 0.02),
                                                                (0.02, -ry - 0.08), (-0.02, -ry - 0.08)])]
    return _Drawing(parts, [], lines)


TEMPLATES: dict[str, Callable[[np.random.Generator], _Drawing]] = {
    "top": _top, "pants": _pants, "skirt": _skirt, "hat": _hat,
}
"""Categories this prior can draw; any other category is learnt from its products alone."""


def garment_shape(category: str, rng: np.random.Generator, size: int = 128) -> Shape:
    """A template garment of `category`, fitted into a `size` canvas with a margin."""
    if category not in TEMPLATES:
        raise ValueError(f"no garment template for {category!r}; known: {sorted(TEMPLATES)}")
    drawing = TEMPLATES[category](rng)
    points = np.vstack(drawing.parts)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = 0.8 * size / float(max(high - low))
    offset = size / 2.0 - scale * (low + high) / 2.0

    def pixels(poly: Poly) -> np.ndarray:
        return np.round((poly * scale + offset) * 16).astype(np.int32).reshape(-1, 1, 2)

    mask = np.zeros((size, size), np.uint8)
    for part in drawing.parts:
        cv2.fillPoly(mask, [pixels(part)], 255, lineType=cv2.LINE_8, shift=4)
    for hole in drawing.holes:
        cv2.fillPoly(mask, [pixels(hole)], 0, lineType=cv2.LINE_8, shift=4)
    edges = np.full((size, size), PAPER, np.uint8)
    for line in drawing.lines:
        cv2.polylines(edges, [pixels(line)], False, INK, thickness=1, lineType=cv2.LINE_8, shift=4)
    colour = rng.integers(0, 256, size=3).astype(np.uint8)
    photo = np.where(mask[..., None] > 0, colour, np.uint8(255)).astype(np.uint8)
    return Shape(mask, edges, photo)
