"""Sketch-like edge maps of isolated garment photos: the model's training input.

Models trained on raw Canny edges generalise poorly to hand drawings, because Canny output is
thin, broken, speckled and texture-heavy while a shopper draws a closed outline and a few
confident lines of even weight. This module turns a product photo into that kind of drawing:

1. a slightly blurred Lab image (CLAHE on the lightness first when the garment is light on a
   light background, otherwise its seams and folds sit below any sensible Canny threshold);
   Canny on all three Lab channels, so red/blue stripes of equal brightness still give lines;
2. Canny thresholds from the garment's own median lightness (median * (1 -/+ sigma); median
   darkness for light garments), never below twice the garment's typical gradient, so flat
   fabric noise and dense prints (florals, knits) stay paper;
3. speckle removal (ink components smaller than `min_component` pixels are dropped);
4. line-weight normalisation (every line becomes `line_width` pixels wide at the reference size);
5. the silhouette outline from the mask, drawn as a closed band so colour cannot bleed out.

Edge maps are uint8 HxW with 0 = ink and 255 = paper.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

import cv2
import numpy as np

REFERENCE_SIZE = 256
"""Image side (pixels) at which `line_width`, `min_component` and blur sizes are specified."""

DEFAULT_LIGHT_WORDS: tuple[str, ...] = (
    "white", "ivory", "cream", "pale", "light", "sky", "gray", "grey", "beige", "pastel",
    "offwhite", "off-white", "silver",
)
DARKENING_WORDS: frozenset[str] = frozenset({"dark", "deep", "charcoal", "black", "navy"})
"""A light word right after one of these ("dark grey") does not make a garment light."""

LIGHT_LUMA = 185
"""Median garment grey level at or above which a garment counts as light."""
MIN_CONTRAST = 60
"""Garments closer than this (grey levels) to their surround count as low-contrast."""
MIN_LOWER_THRESHOLD = 12.0
"""Floor for Canny's lower threshold (Sobel L2 units)."""
NOISE_FACTOR = 2.0
"""Canny's lower threshold is at least this many times the garment's median gradient."""

PAPER_LEVEL = 250
"""Without a mask, pixels at least this light are taken for the white background."""

INK = 0
PAPER = 255


def scaled(value: float, shape: tuple[int, ...], reference_size: int = REFERENCE_SIZE) -> float:
    """Scale a length given at `reference_size` to an image of this shape (by its shorter side)."""
    return value * min(shape[:2]) / float(reference_size)


def pen_width(shape: tuple[int, ...], line_width: float = 2,
              reference_size: int = REFERENCE_SIZE) -> int:
    """Line width in pixels for an image of this shape; never thinner than one pixel."""
    return max(1, int(round(scaled(line_width, shape, reference_size))))


def title_says_light(title: str, light_words: Iterable[str] = DEFAULT_LIGHT_WORDS) -> bool:
    """True when the product title names a light colour ("Ivory linen shirt", "off-white tee").

    Whole words only, so "lightweight" and "skyline" do not count, and "dark grey" does not.
    """
    words = set(w.lower() for w in light_words)
    tokens = re.findall(r"[a-z]+(?:-[a-z]+)*", title.lower())
    previous = ""
    for token in tokens:
        candidates = {token, *token.split("-"), token.replace("-", "")}
        if candidates & words and previous not in DARKENING_WORDS:
            return True
        previous = token
    return False


def guess_garment(grey: np.ndarray) -> np.ndarray:
    """Without a mask: everything that is not near-white paper (the whole frame if all paper)."""
    garment = grey < PAPER_LEVEL
    return garment if garment.any() else np.ones_like(garment)


def _garment_and_surround(grey: np.ndarray,
                          mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Grey levels of the garment and of a ring of background around it.

    Without a mask the garment is everything that is not near-white paper, and the surround is
    the paper itself (a white-background product shot is assumed).
    """
    if mask is None:
        garment = guess_garment(grey)
        return grey[garment], grey[~garment] if (~garment).any() else np.array([255], np.uint8)
    inside = mask > 0
    ring_px = max(3, int(round(0.03 * min(grey.shape))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
    ring = (cv2.dilate(inside.astype(np.uint8), kernel) > 0) & ~inside
    garment = grey[inside] if inside.any() else grey.ravel()
    surround = grey[ring] if ring.any() else np.array([255], np.uint8)
    return garment, surround


def is_light_garment(rgb: np.ndarray, mask: np.ndarray | None = None, title: str = "",
                     light_words: Iterable[str] = DEFAULT_LIGHT_WORDS) -> bool:
    """True for a light garment on a light background, whose details need contrast enhancement.

    Decided from the pixels (the garment's median grey level is high, or it differs little from
    its surround) or from a light colour word in the product title, which catches pale garments
    photographed under warm light that the pixels alone would miss.
    """
    if title and title_says_light(title, light_words):
        return True
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    garment, surround = _garment_and_surround(grey, mask)
    garment_level = float(np.median(garment))
    contrast = abs(float(np.median(surround)) - garment_level)
    return garment_level >= LIGHT_LUMA or contrast < MIN_CONTRAST


def canny_thresholds(image: np.ndarray, region: np.ndarray | None, sigma: float,
                     *, light: bool = False) -> tuple[float, float]:
    """Canny thresholds median * (1 -/+ sigma) from the garment's own tones, above its noise.

    `image` is the blurred Lab image Canny will see. The median lightness is taken over the
    garment, not the whole frame: on a white product shot the frame's median is the paper
    (255). For a light garment the median *darkness* (255 - lightness) is used instead: what
    matters there is how far the garment is from white (gradients are the same for an image
    and its negative, only the thresholds change). The lower threshold never drops below
    `NOISE_FACTOR` times the garment's median gradient, so flat fabric noise and dense
    texture (floral prints, knit) stay paper while seams, folds and pattern boundaries stay ink.
    """
    inside = region if region is not None and region.any() else np.ones(image.shape[:2], bool)
    median = float(np.median(image[..., 0][inside]))
    if light:
        median = 255.0 - median
    noise = float(np.sqrt(np.median(strongest_gradient_squared(image)[inside])))
    lower = max(MIN_LOWER_THRESHOLD, NOISE_FACTOR * noise, (1.0 - sigma) * median)
    upper = max(2.0 * lower, min(255.0, (1.0 + sigma) * median))
    return lower, upper


def strongest_gradient_squared(image: np.ndarray) -> np.ndarray:
    """Per-pixel squared L2 Sobel gradient of the strongest channel (what Canny thresholds).

    Squared, because only its median is needed and the square root is monotonic.
    """
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    squared = cv2.add(cv2.multiply(gx, gx), cv2.multiply(gy, gy))
    if squared.ndim == 2:
        return squared
    channels = cv2.split(squared)
    strongest = channels[0]
    for channel in channels[1:]:
        strongest = cv2.max(strongest, channel)
    return strongest


def enhance_contrast(lightness: np.ndarray, clahe_clip: float) -> np.ndarray:
    """CLAHE on the lightness: lifts faint shading on white-on-white garments above the noise.

    Clip-limited, unlike plain histogram equalisation, which would spread the flat white
    fabric's noise over the whole grey range and draw it as scribbles.
    """
    tiles = max(2, int(round(min(lightness.shape) / 32)))
    clahe = cv2.createCLAHE(clipLimit=float(clahe_clip), tileGridSize=(tiles, tiles))
    return clahe.apply(lightness)


def remove_speckles(ink: np.ndarray, min_component: int) -> np.ndarray:
    """Drop 8-connected ink components smaller than `min_component` pixels (texture, noise)."""
    if min_component <= 1 or not ink.any():
        return ink
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_component
    keep[0] = False
    return keep[labels]


def thicken(ink: np.ndarray, width: int) -> np.ndarray:
    """Give thin lines a uniform pen width by dilating them with a width x width pen tip."""
    if width <= 1:
        return ink
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE if width > 2 else cv2.MORPH_RECT,
                                    (width, width))
    return cv2.dilate(ink.astype(np.uint8), pen) > 0


def smooth_mask(mask: np.ndarray, sigma: float) -> np.ndarray:
    """The mask with pixel-level jaggies (from segmentation) rounded off, as a pen would draw it."""
    if sigma <= 0:
        return mask > 0
    soft = cv2.GaussianBlur((mask > 0).astype(np.float32), (0, 0), sigma)
    return soft >= 0.5


def silhouette_outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The mask's boundary as a band `width` pixels wide, just inside the garment.

    A band made by erosion has no 8-connected gap between outside and inside, so the outer
    outline is closed by construction (also around holes, such as between trouser legs).
    """
    inside = (mask > 0).astype(np.uint8)
    pen = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * width + 1, 2 * width + 1))
    # Pad with background so the garment touching the frame still gets an outline there.
    padded = cv2.copyMakeBorder(inside, width, width, width, width, cv2.BORDER_CONSTANT, value=0)
    # Core = pixels whose (2w+1)^2 neighbourhood is all garment; the rest is a w-pixel band.
    core = cv2.erode(padded, pen)[width:-width, width:-width]
    return (inside > 0) & (core == 0)


def _interior(mask: np.ndarray, margin: int) -> np.ndarray:
    """Garment pixels at least `margin` pixels from the silhouette (where inner lines may go)."""
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return cv2.erode((mask > 0).astype(np.uint8), pen) > 0


def sketch_edges(
    rgb: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    title: str = "",
    line_width: float = 2,
    min_component: int = 12,
    canny_sigma: float = 0.33,
    clahe_clip: float = 2.0,
    light_words: Iterable[str] = DEFAULT_LIGHT_WORDS,
    reference_size: int = REFERENCE_SIZE,
) -> np.ndarray:
    """Pen-drawing-like edge map (uint8 HxW, 0 = ink, 255 = paper) of an isolated garment.

    `line_width` and `min_component` are given at `reference_size` pixels and scaled to the
    image. With a mask, inner lines are kept away from the silhouette (no doubled outline) and
    the silhouette itself is drawn as a closed band; without one, Canny alone draws everything.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image HxWx3, got shape {rgb.shape}")
    if mask is not None and mask.shape[:2] != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {rgb.shape[:2]}")
    shape = rgb.shape
    width = pen_width(shape, line_width, reference_size)
    blur_sigma = max(0.6, scaled(1.0, shape, reference_size))
    inner = None if mask is None else _interior(mask, width + max(1, int(round(2 * blur_sigma))))

    # Lab, so colour boundaries of equal brightness (red/blue stripes) still give edges;
    # OpenCV's Canny takes the strongest channel's gradient at each pixel.
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2Lab)
    light = is_light_garment(rgb, mask, title, light_words)
    if light:
        lab[..., 0] = enhance_contrast(lab[..., 0], clahe_clip)
    lab = cv2.GaussianBlur(lab, (0, 0), blur_sigma)
    garment = inner if inner is not None else guess_garment(lab[..., 0])
    lower, upper = canny_thresholds(lab, garment, canny_sigma, light=light)
    ink = cv2.Canny(lab, lower, upper, L2gradient=True) > 0
    if inner is not None:
        ink &= inner
    min_pixels = max(1, int(round(scaled(min_component, shape, reference_size))))
    ink = thicken(remove_speckles(ink, min_pixels), width)
    if mask is not None:
        ink |= silhouette_outline(smooth_mask(mask, blur_sigma), width)
    return np.where(ink, INK, PAPER).astype(np.uint8)


def ink_fraction(edges: np.ndarray) -> float:
    """Share of the image that is ink (a sanity figure: drawings are mostly paper)."""
    return float(np.count_nonzero(edges < 128)) / float(edges.size)
