"""Turn a garment layout into a product-style photo: colours, patterns, shading, white backdrop.

Real shop photos are not flat clip-art: light falls off toward the silhouette, seams and folds
cast soft shadows, stitching shows as fine lines. Those cues are what let a white shirt stand out
from a white backdrop, and what give edge maps of the photos interior lines to learn from.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sketch2fashion.demo.garments import REGIONS, GarmentSpec, Layout, Line, garment_layout

# Shop colour names -> sRGB. Names are used verbatim in titles and the feed's `color` column, and
# the light ones share words ("white", "light", "pale", "sky", "cream"...) the edge stage keys on.
PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (246, 246, 243),
    "ivory": (242, 236, 214),
    "cream": (236, 222, 186),
    "light gray": (196, 198, 200),
    "sky blue": (150, 196, 232),
    "pale pink": (244, 196, 206),
    "beige": (212, 188, 150),
    "yellow": (242, 200, 46),
    "orange": (232, 116, 38),
    "red": (196, 30, 40),
    "burgundy": (112, 28, 44),
    "pink": (228, 90, 150),
    "purple": (108, 62, 150),
    "navy": (30, 40, 84),
    "blue": (40, 92, 184),
    "teal": (20, 128, 128),
    "green": (42, 128, 62),
    "olive": (112, 110, 50),
    "brown": (112, 72, 40),
    "black": (30, 30, 32),
}
PATTERNS: tuple[str, ...] = ("solid", "stripes", "dots", "colorblock")

# How each region takes colour: "main" and "block" carry the pattern; "block" switches to the
# accent in a colour-block; "trim" switches to the accent for contrast trims and colour-blocks.
_REGION_ROLE = {
    "body": "main", "pocket": "main", "crown": "main",
    "sleeve": "block", "stripe": "block", "tier": "block", "brim": "block",
    "collar": "trim", "cuff": "trim", "waistband": "trim", "loop": "trim", "band": "trim",
    "pompom": "trim", "inside": "inside", "button": "hardware",
}
_BRASS = (176, 146, 92)
_FILL = 0.76          # the garment's longer side, as a share of the frame
_SHIFT = 4            # sub-pixel bits for OpenCV polygon drawing
_BACKDROP = 255.0


def lab_distance(a: tuple[int, int, int] | np.ndarray, b: tuple[int, int, int] | np.ndarray) -> float:
    """CIE76 distance between two sRGB colours: how different they look, roughly."""
    pair = np.array([[a, b]], np.float32) / 255.0
    lab = cv2.cvtColor(pair, cv2.COLOR_RGB2Lab)[0]
    return float(np.linalg.norm(lab[0] - lab[1]))


@dataclass(frozen=True)
class _Frame:
    """Maps garment units to pixels: centred, longer side filling `_FILL` of the frame."""

    size: int
    scale: float      # pixels per garment unit
    origin: np.ndarray  # pixel position of garment (0, 0)

    @classmethod
    def fit(cls, layout: Layout, size: int) -> "_Frame":
        points = np.concatenate([p.polygon for p in layout.parts if not p.within])
        low, high = points.min(axis=0), points.max(axis=0)
        scale = _FILL * size / float((high - low).max())
        origin = size / 2 - (low + high) / 2 * scale
        return cls(size, scale, origin)

    def pixels(self, points: np.ndarray) -> np.ndarray:
        return points * self.scale + self.origin

    def fixed(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates as OpenCV fixed-point (pixel centres at integers)."""
        return np.round((self.pixels(points) - 0.5) * (1 << _SHIFT)).astype(np.int32)

    def garment_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Garment-unit coordinates of pixel centres, as a row and a column (broadcastable)."""
        centres = np.arange(self.size, dtype=np.float32) + 0.5
        xs = (centres - np.float32(self.origin[0])) / np.float32(self.scale)
        ys = (centres - np.float32(self.origin[1])) / np.float32(self.scale)
        return xs[None, :], ys[:, None]


def render_garment(spec: GarmentSpec, size: int,
                   rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render `spec` as a product photo.

    Returns (rgb uint8 HxWx3 on white background, mask uint8 HxW with 255 on the garment, 0
    elsewhere). `rng` only drives fabric grain; by default it derives from `spec.detail_seed`, so a
    spec alone fixes every pixel.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    for name in (spec.color, spec.accent):
        if name not in PALETTE:
            raise ValueError(f"unknown colour {name!r}; known: {', '.join(PALETTE)}")
    if spec.pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {spec.pattern!r}; known: {', '.join(PATTERNS)}")
    rng = rng if rng is not None else np.random.default_rng([spec.detail_seed, 1])
    layout = garment_layout(spec)
    frame = _Frame.fit(layout, size)
    labels, alpha = rasterise(layout, frame)
    inside = alpha >= 128

    colour = _base_colour(spec, labels, frame)
    light = _light(labels, inside, frame, rng)
    seams, folds_dark, folds_lit = _line_maps(layout.lines, frame)
    light *= (1.0 - 0.45 * seams) * (1.0 - 0.20 * folds_dark)
    # Lift the exposure part of the way back, as a photographer would: the garment should read as
    # its named colour on average, while light colours keep their shading against the backdrop.
    light *= np.float32(float(light[inside].mean()) ** -0.6) if inside.any() else np.float32(1)
    shaded = colour * light[..., None] + (255.0 - colour) * (0.22 * folds_lit)[..., None]

    a = alpha.astype(np.float32)[..., None] / 255.0
    backdrop = _backdrop_with_shadow(alpha, size)[..., None]
    photo = shaded * a + backdrop * (1.0 - a)
    rgb = np.clip(photo + 0.5, 0, 255).astype(np.uint8)
    return rgb, np.where(inside, 255, 0).astype(np.uint8)


def garment_regions(spec: GarmentSpec, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Region-label map (uint8; REGIONS[label - 1], 0 = background) and the garment mask (0/255).

    The same geometry `render_garment` draws, for callers that want per-region truth (which pixels
    are sleeve, collar, brim...), e.g. to place colour hints or check a colour-block.
    """
    layout = garment_layout(spec)
    labels, alpha = rasterise(layout, _Frame.fit(layout, size))
    inside = alpha >= 128
    return np.where(inside, labels, 0).astype(np.uint8), np.where(inside, 255, 0).astype(np.uint8)


def rasterise(layout: Layout, frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    """Region-label map (index into REGIONS + 1, 0 = background) and anti-aliased coverage."""
    size = frame.size
    labels = np.zeros((size, size), np.uint8)
    alpha = np.zeros((size, size), np.uint8)
    scratch = np.zeros((size, size), np.uint8)
    for part in layout.parts:
        label = REGIONS.index(part.region) + 1
        points = [frame.fixed(part.polygon)]
        if part.within:
            scratch[:] = 0
            cv2.fillPoly(scratch, points, 1, lineType=cv2.LINE_8, shift=_SHIFT)
            labels[(scratch > 0) & (labels > 0)] = label
        else:
            cv2.fillPoly(labels, points, label, lineType=cv2.LINE_8, shift=_SHIFT)
            cv2.fillPoly(alpha, points, 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    # The anti-aliased fringe reaches half a pixel past the hard fill: give it its neighbour's label.
    grown = cv2.dilate(labels, np.ones((3, 3), np.uint8))
    labels = np.where(labels == 0, grown, labels)
    return labels, alpha


def _base_colour(spec: GarmentSpec, labels: np.ndarray, frame: _Frame) -> np.ndarray:
    """Flat colour per pixel: region colours, with the pattern mixed into patterned regions."""
    main = np.array(PALETTE[spec.color], np.float32)
    accent = np.array(PALETTE[spec.accent], np.float32)
    block = spec.pattern == "colorblock"
    by_role = {
        "main": main, "block": accent if block else main,
        "trim": accent if (block or spec.contrast_trim) else main,
        "inside": main * 0.72, "hardware": np.array(_BRASS, np.float32),
    }
    table = np.zeros((len(REGIONS) + 1, 3), np.float32)
    patterned = np.zeros(len(REGIONS) + 1, bool)
    for index, region in enumerate(REGIONS, start=1):
        role = _REGION_ROLE[region]
        table[index] = by_role[role]
        patterned[index] = role in ("main", "block") and spec.pattern in ("stripes", "dots")
    colour = table[labels]
    if patterned.any():
        cover = _pattern_cover(spec, frame) * patterned[labels]
        colour += (accent - colour) * cover[..., None]
    return colour


def _pattern_cover(spec: GarmentSpec, frame: _Frame) -> np.ndarray:
    """Anti-aliased coverage (0..1) of stripes or dots, laid out in garment units."""
    xs, ys = frame.garment_grid()
    period = np.float32(spec.pattern_period)
    px = period * np.float32(frame.scale)  # pixels per period
    if spec.pattern == "stripes":
        theta = np.deg2rad(spec.pattern_angle)
        across = (-np.sin(theta) * xs + np.cos(theta) * ys).astype(np.float32) / period
        phase = across - np.floor(across)
        duty = np.float32(spec.pattern_fill)
        signed = np.where(phase < duty, np.minimum(phase, duty - phase), -np.minimum(phase - duty, 1 - phase))
        return np.clip(signed * px + 0.5, 0.0, 1.0)
    row_gap = period * np.float32(0.866)
    row = np.round(ys / row_gap)
    shift = (row % 2) * period / 2
    dx = xs - shift
    dx = dx - np.round(dx / period) * period
    dy = ys - row * row_gap
    dist = np.sqrt(dx * dx + dy * dy)
    radius = np.float32(spec.pattern_fill) * period
    return np.clip((radius - dist) * np.float32(frame.scale) + 0.5, 0.0, 1.0)


def _light(labels: np.ndarray, inside: np.ndarray, frame: _Frame, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative light: top-left key light, fall-off at the silhouette, shadows at seams."""
    size = frame.size
    depth = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    light = (1.06 - 0.14 * np.exp(-depth / (0.06 * size)) - 0.16 * np.exp(-depth / (0.012 * size))
             - 0.14 * np.exp(-depth / 1.4)).astype(np.float32)

    ys, xs = np.nonzero(inside)
    if len(xs):
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        gx = (np.arange(size, dtype=np.float32) - (x0 + x1) / 2) / max(x1 - x0, 1)
        gy = (np.arange(size, dtype=np.float32) - (y0 + y1) / 2) / max(y1 - y0, 1)
        light *= 1.0 - 0.10 * gx[None, :] - 0.12 * gy[:, None]

    region_edge = np.zeros_like(inside)
    region_edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    region_edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    region_edge &= labels > 0
    region_edge &= cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if region_edge.any():
        gap = cv2.distanceTransform((~region_edge).astype(np.uint8), cv2.DIST_L2, 5)
        light *= 1.0 - 0.22 * np.exp(-gap / (0.006 * size)) - 0.20 * np.exp(-gap / 0.9)

    coarse = rng.standard_normal((size // 16 + 2, size // 16 + 2)).astype(np.float32)
    mottle = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal((size, size)).astype(np.float32)
    fuzzy = labels == REGIONS.index("pompom") + 1
    light *= 1.0 + 0.018 * mottle + np.where(fuzzy, 0.14, 0.012) * grain
    return light


def _line_maps(lines: tuple[Line, ...], frame: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seam/stitch darkening, fold shadows and fold highlights, each 0..1 per pixel."""
    size, scale = frame.size, frame.scale
    seams = np.zeros((size, size), np.uint8)
    dark = np.zeros((size, size), np.uint8)
    lit = np.zeros((size, size), np.uint8)
    fold_width = []
    for line in lines:
        value = int(round(255 * min(abs(line.strength), 1.0)))
        pen = max(1, int(round(line.width * scale)))
        if line.kind == "fold":
            canvas = dark if line.strength > 0 else lit
            cv2.polylines(canvas, [frame.fixed(line.points)], False, value, pen, cv2.LINE_AA, _SHIFT)
            fold_width.append(line.width * scale)
        elif line.kind == "stitch":
            dash, gap = max(2.0, 0.012 * scale), max(1.5, 0.008 * scale)
            dashes = _dashes(frame.pixels(line.points), dash, gap)
            if dashes:
                fixed = [np.round((d - 0.5) * (1 << _SHIFT)).astype(np.int32) for d in dashes]
                cv2.polylines(seams, fixed, False, value, pen, cv2.LINE_AA, _SHIFT)
        else:
            cv2.polylines(seams, [frame.fixed(line.points)], False, value, pen, cv2.LINE_AA, _SHIFT)
    sigma = 0.5 * float(np.median(fold_width)) if fold_width else 1.0
    to_unit = np.float32(1 / 255)
    return (seams.astype(np.float32) * to_unit,
            cv2.GaussianBlur(dark, (0, 0), sigma).astype(np.float32) * to_unit,
            cv2.GaussianBlur(lit, (0, 0), sigma).astype(np.float32) * to_unit)


def _dashes(points: np.ndarray, dash: float, gap: float) -> list[np.ndarray]:
    """Split a pixel polyline into dash segments (stitching), sampled along its arc length."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    starts = np.arange(0.0, along[-1] - dash, dash + gap)
    if len(starts) == 0:
        return []
    samples = np.stack([starts, starts + dash], axis=1)
    xs = np.interp(samples, along, points[:, 0])
    ys = np.interp(samples, along, points[:, 1])
    return list(np.stack([xs, ys], axis=2))


def _backdrop_with_shadow(alpha: np.ndarray, size: int) -> np.ndarray:
    """White sweep with a soft contact shadow down-right of the garment, pure white at the border."""
    shift = np.float32([[1, 0, 0.012 * size], [0, 1, 0.02 * size]])
    cast = cv2.warpAffine(alpha, shift, (size, size))
    shadow = cv2.GaussianBlur(cast, (0, 0), 0.02 * size).astype(np.float32) / 255.0
    from_border = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    ramp = np.clip(from_border / (0.04 * size), 0, 1)
    return _BACKDROP * (1.0 - 0.16 * shadow * ramp[None, :] * ramp[:, None])
