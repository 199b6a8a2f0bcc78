"""Frame an image around its content: the same garment drawn small in a corner or filling the page
looks the same to a classifier or an encoder.

Shoppers draw at any size and anywhere on the canvas (quick doodles are often small and
off-centre), while catalog photos are centred at a fixed size. Cropping every image to the box
around what is not paper, with a fixed margin, and padding it square on white removes position
and scale before a network ever sees it, so the networks spend nothing on learning them and a
doodle in a corner is recognised as well as one in the middle.
"""
from __future__ import annotations

import numpy as np

PAPER_LEVEL = 235
"""A pixel whose darkest channel is at least this is paper (white or near-white backdrop)."""
MARGIN = 0.08
"""Paper kept around the content, as a share of the content box's longer side."""
MIN_CONTENT = 4
"""Fewer content pixels than this is an empty page: the image is only padded square."""


def content_box(rgb: np.ndarray, paper_level: int = PAPER_LEVEL) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels that are not paper, or None for an empty page."""
    darkest = rgb.min(axis=2) if rgb.ndim == 3 else rgb
    rows = np.flatnonzero((darkest < paper_level).sum(axis=1))
    cols = np.flatnonzero((darkest < paper_level).sum(axis=0))
    if len(rows) == 0 or (darkest < paper_level).sum() < MIN_CONTENT:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def frame_content(rgb: np.ndarray, margin: float = MARGIN, paper_level: int = PAPER_LEVEL) -> np.ndarray:
    """A square RGB image of the content box with `margin` paper round it (white where the box
    reaches past the image). An empty page comes back padded square."""
    box = content_box(rgb, paper_level)
    h, w = rgb.shape[:2]
    if box is None:
        x0, y0, x1, y1 = 0, 0, w, h
        pad = 0
    else:
        x0, y0, x1, y1 = box
        pad = int(round(margin * max(x1 - x0, y1 - y0)))
    side = max(x1 - x0, y1 - y0) + 2 * pad
    out = np.full((side, side, 3), 255, np.uint8)
    top = (side - (y1 - y0)) // 2
    left = (side - (x1 - x0)) // 2
    crop = rgb[y0:y1, x0:x1]
    if crop.ndim == 2:
        crop = np.repeat(crop[..., None], 3, axis=2)
    out[top:top + (y1 - y0), left:left + (x1 - x0)] = crop
    return out
