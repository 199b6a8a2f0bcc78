"""Frame an image around its content: the same garment drawn small in a corner or filling the page
looks the same to a classifier or an encoder.

Shoppers draw at any size and anywhere on the canvas (quick doodles are often small and
off-centre), while catalog photos are centred at a fixed size. Cropping every image to the box
around what is not paper, with a fixed margin, and padding it square on white removes position
and scale before a network ever sees it, so the networks spend nothing on learning them and a
doodle in a corner is recognised as well as one in the middle.
"""
from __future__ import annotations

import cv2
import numpy as np

PAPER_LEVEL = 235
"""A pixel whose darkest channel is at least this is paper (white or near-white backdrop)."""
MARGIN = 0.08
"""Paper kept around the content, as a share of the content box's longer side."""
MIN_CONTENT = 4
"""Fewer content pixels than this is an empty page: the image is only padded square."""


def content_box(rgb: np.ndarray, paper_level: int = PAPER_LEVEL) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels that are not paper, or None for an empty page.

    One OpenCV pass (a pixel is paper when every channel is at least `paper_level`) and a
    bounding rectangle: the catalog search frames every drawing and photo it is sent, and the
    NumPy way (min over channels, then row and column sums) cost 7 ms of its CPU on a 512 px
    drawing against ~0.3 ms (thread CPU, AMD EPYC).
    """
    image = np.ascontiguousarray(rgb)
    low = (paper_level,) * (image.shape[2] if image.ndim == 3 else 1)
    content = cv2.bitwise_not(cv2.inRange(image, low, (255,) * len(low)))
    if cv2.countNonZero(content) < MIN_CONTENT:
        return None
    x, y, w, h = cv2.boundingRect(content)
    return x, y, x + w, y + h


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
