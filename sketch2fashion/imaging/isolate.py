"""Garment isolation: cut the garment out of a photo so training images show it on white.

Shop shots sit on a clean white backdrop, but real photos lie on floors, beds and hangers, and a
sketch-to-photo model would otherwise learn to paint parquet. Two methods:

* "threshold" - colour distance from the border colour; fast and exact for clean product shots,
  and helped by edges so light (cream, pale grey) garments on white still close their outline.
* "grabcut" - OpenCV GrabCut seeded from the border (the photographer frames the garment, so the
  border is background) at a reduced working resolution, with a colour model of the border.

"auto" uses threshold when the border is uniform and near white, GrabCut otherwise. Both finish
with the same clean-up: largest connected component(s), small holes filled.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sketch2fashion.imaging.io import fit_within

METHODS = ("auto", "grabcut", "threshold", "none")

WORK_SIDE = 200            # isolation runs at most this big; masks are upsampled afterwards
BORDER_FRACTION = 0.04     # border band width, as a fraction of the shorter side
WHITE_MIN_LIGHTNESS = 85.0  # Lab L* of a "near white" backdrop (0..100)
WHITE_MAX_CHROMA = 12.0
UNIFORM_MAX_SPREAD = 10.0  # 90th-percentile border colour distance (Delta E) of a clean backdrop
KEEP_COMPONENT_RATIO = 0.25  # other blobs survive when at least this share of the largest
MAX_HOLE_RATIO = 0.25      # holes up to this share of the garment are filled (prints, buttons)
SECOND_OPINION_BELOW = 0.2  # seeded GrabCut masks outside this range get a rectangle rerun
SECOND_OPINION_ABOVE = 0.9
PLAUSIBLE_LOW = 0.05       # mask shares a real garment photo can have (params: ingest.mask_fail_*)
PLAUSIBLE_HIGH = 0.95
CENTRE_RADIUS = 0.32       # central ellipse (share of each side) that starts as probable garment
PALETTE_SIZE = 6           # border colour clusters
PALETTE_MIN_SHARE = 0.12   # border clusters rarer than this may be garment touching the frame


@dataclass(frozen=True)
class BorderStats:
    """What the frame's border says about the backdrop, in Lab (L 0..100)."""

    colour_lab: np.ndarray   # median border colour
    spread: float            # 90th percentile Delta E of border pixels from that colour

    @property
    def is_clean_white(self) -> bool:
        lightness = float(self.colour_lab[0])
        chroma = float(np.hypot(self.colour_lab[1], self.colour_lab[2]))
        return (lightness >= WHITE_MIN_LIGHTNESS and chroma <= WHITE_MAX_CHROMA
                and self.spread <= UNIFORM_MAX_SPREAD)


def isolate_garment(rgb: np.ndarray, *, method: str = "auto", iters: int = 4) -> np.ndarray:
    """Mask (uint8 HxW, 0 or 255) of the garment in an RGB photo."""
    if method not in METHODS:
        raise ValueError(f"unknown isolation method {method!r}; use one of {', '.join(METHODS)}")
    height, width = rgb.shape[:2]
    if method == "none":
        return np.full((height, width), 255, np.uint8)
    small = fit_within(rgb, WORK_SIDE)
    lab = _to_lab(small)
    stats = border_stats(lab)
    if method == "auto":
        method = "threshold" if stats.is_clean_white else "grabcut"
    if method == "threshold":
        mask_small = clean_mask(_threshold_mask(small, lab, stats))
    else:
        mask_small = _grabcut_best(small, lab, iters=iters)
    return _upsample_mask(mask_small, (width, height))


def choose_method(rgb: np.ndarray) -> str:
    """The method "auto" would use for this photo (reports count them)."""
    stats = border_stats(_to_lab(fit_within(rgb, WORK_SIDE)))
    return "threshold" if stats.is_clean_white else "grabcut"


def estimate_background(rgb: np.ndarray) -> np.ndarray:
    """Backdrop colour (RGB uint8, shape (3,)): the median of the image's border band."""
    pixels = border_pixels(rgb)
    return np.median(pixels, axis=0).round().astype(np.uint8)


def composite_on_white(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Garment pasted on white, with a slightly feathered edge so it reads like a product shot."""
    sigma = max(0.6, min(rgb.shape[:2]) / 400.0)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)[..., None]
    out = rgb.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def mask_fraction(mask: np.ndarray) -> float:
    """Share of the frame the mask covers (0..1); far from the middle means isolation failed."""
    return float(np.count_nonzero(mask)) / float(mask.size) if mask.size else 0.0


def border_pixels(img: np.ndarray, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """All pixels in the border band, as an (N, channels) array."""
    band = _band_width(img.shape[:2], fraction)
    ring = np.zeros(img.shape[:2], bool)
    ring[:band, :] = ring[-band:, :] = True
    ring[:, :band] = ring[:, -band:] = True
    return img[ring].reshape(-1, img.shape[2] if img.ndim == 3 else 1)


def border_stats(lab: np.ndarray) -> BorderStats:
    pixels = border_pixels(lab)
    colour = np.median(pixels, axis=0)
    spread = float(np.percentile(np.linalg.norm(pixels - colour, axis=1), 90))
    return BorderStats(colour_lab=colour, spread=spread)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Drop speckle and stray blobs, fill small holes: one or a few solid garment regions."""
    side = min(mask.shape[:2])
    k = max(3, (side // 60) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = keep_large_components(mask)
    return fill_holes(mask)


def keep_large_components(mask: np.ndarray, ratio: float = KEEP_COMPONENT_RATIO) -> np.ndarray:
    """Keep the largest connected component and any at least `ratio` of its size."""
    binary = (mask > 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, bool)
    keep[1:] = areas >= ratio * areas.max()
    return np.where(keep[labels], 255, 0).astype(np.uint8)


def fill_holes(mask: np.ndarray, max_ratio: float = MAX_HOLE_RATIO) -> np.ndarray:
    """Fill enclosed background regions smaller than `max_ratio` of the garment area.

    Big enclosed regions are left open: the gap between trouser legs can close at the hem.
    """
    background = (mask == 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    if count <= 1:
        return mask
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right = left + stats[:, cv2.CC_STAT_WIDTH]
    bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
    height, width = mask.shape
    touches_edge = (left == 0) | (top == 0) | (right == width) | (bottom == height)
    garment_area = max(1, np.count_nonzero(mask))
    is_hole = ~touches_edge & (stats[:, cv2.CC_STAT_AREA] <= max_ratio * garment_area)
    is_hole[0] = False  # label 0 is the garment itself here
    out = mask.copy()
    out[is_hole[labels]] = 255
    return out


def _threshold_mask(rgb: np.ndarray, lab: np.ndarray, stats: BorderStats) -> np.ndarray:
    """Colour distance from the backdrop, plus closed edges so faint garments keep an outline."""
    distance = np.linalg.norm(lab - stats.colour_lab, axis=2)
    threshold = max(4.0, 1.5 * stats.spread + 2.0)
    mask = (distance > threshold).astype(np.uint8) * 255
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 10, 30)
    edges[_border_ring(edges.shape, BORDER_FRACTION / 2)] = 0
    mask = cv2.bitwise_or(mask, edges)
    k = max(3, (min(mask.shape) // 40) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    return fill_holes(mask, max_ratio=1.0)


def _grabcut_best(rgb: np.ndarray, lab: np.ndarray, *, iters: int) -> np.ndarray:
    """Colour-seeded GrabCut, with a plain-rectangle GrabCut as a second opinion when needed.

    Colour seeding fails one way: a garment close in colour to its backdrop (dark tee on a dark
    floor) shrinks to its print. The rectangle start, which assumes everything inside the frame
    may be garment, recovers those, so when the seeded mask is implausibly small (or huge) and
    sits inside a much larger rectangle mask, the rectangle mask wins.
    """
    seeded = clean_mask(_grabcut_mask(rgb, _grabcut_seeds(lab), iters=iters))
    share = mask_fraction(seeded)
    if SECOND_OPINION_BELOW <= share <= SECOND_OPINION_ABOVE:
        return seeded
    rect = clean_mask(_grabcut_mask(rgb, _rectangle_seeds(lab.shape[:2]), iters=iters))
    rect_share = mask_fraction(rect)
    if not PLAUSIBLE_LOW <= rect_share <= SECOND_OPINION_ABOVE:
        return seeded
    seeded_failed = not PLAUSIBLE_LOW <= share <= PLAUSIBLE_HIGH
    inside = np.count_nonzero((seeded > 0) & (rect > 0)) >= 0.9 * np.count_nonzero(seeded)
    return rect if seeded_failed or (share < 0.5 * rect_share and inside) else seeded


def _grabcut_mask(rgb: np.ndarray, seeds: np.ndarray, *, iters: int) -> np.ndarray:
    """Run GrabCut from initial labels; an all-background result if it cannot start."""
    seeds = seeds.copy()
    if not (np.any(seeds == cv2.GC_BGD) or np.any(seeds == cv2.GC_PR_BGD)):
        return np.zeros(rgb.shape[:2], np.uint8)
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cv2.setRNGSeed(0)  # GrabCut's k-means start is random; same photo, same mask, in any worker
    try:
        cv2.grabCut(bgr, seeds, None, bgd_model, fgd_model, max(1, iters), cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return np.zeros(rgb.shape[:2], np.uint8)
    garment = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
    return garment.astype(np.uint8) * 255


def _grabcut_seeds(lab: np.ndarray) -> np.ndarray:
    """Initial GrabCut labels.

    The border band is definite background, except border pixels whose colour is rare along the
    border (a trouser leg running out of frame): those are only probable background. Inside,
    pixels far from every common border colour start as probable garment, the rest as probable
    background; the central region leans to garment because photographers centre the subject.
    """
    height, width = lab.shape[:2]
    palette, shares = _border_palette(lab)
    common = palette[shares >= PALETTE_MIN_SHARE]
    if common.size == 0:
        common = palette[[int(np.argmax(shares))]]
    distance = _distance_to_palette(lab, common)
    spread = float(np.percentile(_distance_to_palette(border_pixels(lab), common), 75))
    far = distance > max(8.0, 2.0 * spread)

    seeds = np.full((height, width), cv2.GC_PR_BGD, np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    radius_y, radius_x = CENTRE_RADIUS * height, CENTRE_RADIUS * width
    centre = ((ys - height / 2) / radius_y) ** 2 + ((xs - width / 2) / radius_x) ** 2 <= 1.0
    seeds[far | centre] = cv2.GC_PR_FGD
    ring = _border_ring((height, width), BORDER_FRACTION)
    near_common = distance <= max(8.0, 2.0 * spread)
    seeds[ring & near_common] = cv2.GC_BGD
    seeds[ring & ~near_common] = cv2.GC_PR_BGD
    return seeds


def _rectangle_seeds(shape: tuple[int, int]) -> np.ndarray:
    """Classic GrabCut start: the border band is background, everything inside may be garment."""
    seeds = np.full(shape, cv2.GC_PR_FGD, np.uint8)
    seeds[_border_ring(shape, BORDER_FRACTION)] = cv2.GC_BGD
    return seeds


def _border_palette(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k-means colour clusters of the border band and the share of border pixels in each."""
    pixels = border_pixels(lab).astype(np.float32)
    k = min(PALETTE_SIZE, len(pixels))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)  # k-means++ is random; the same photo must give the same mask
    _, labels, centres = cv2.kmeans(pixels, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    shares = np.bincount(labels.ravel(), minlength=k) / float(len(labels))
    return centres, shares


def _distance_to_palette(lab: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Delta E from each pixel to its nearest palette colour (works on HxWx3 or Nx3)."""
    diffs = lab[..., None, :] - palette.reshape((1,) * (lab.ndim - 1) + palette.shape)
    return np.sqrt((diffs ** 2).sum(axis=-1)).min(axis=-1)


def _border_ring(shape: tuple[int, ...], fraction: float) -> np.ndarray:
    band = _band_width(shape[:2], fraction)
    ring = np.zeros(shape[:2], bool)
    ring[:band, :] = ring[-band:, :] = True
    ring[:, :band] = ring[:, -band:] = True
    return ring


def _band_width(shape: tuple[int, ...], fraction: float) -> int:
    return max(2, int(round(min(shape[:2]) * fraction)))


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (L 0..100) so colour distances roughly match what a person sees."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Back to full resolution with smooth (not blocky) edges."""
    if mask.shape[1] == size[0] and mask.shape[0] == size[1]:
        return mask
    smooth = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    return np.where(smooth >= 127.5, 255, 0).astype(np.uint8)
