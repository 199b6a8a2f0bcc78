"""Real human doodles for development checks, dotted with colour hints as a shopper would.

`../shared/data/doodles-dev` (see its README) holds real Quick, Draw! drawings of garments
("Quick, Draw! Dataset, Google Inc.", CC BY 4.0). They are read from there at run time and never
copied into the repository; everything that uses them reports "absent" when the folder is not
there. The classifier stage and `bench/real_doodles.py` both use this one loader, so the stage's
`real_doodle_accuracy` and the served API's figure come from the same dotted drawings.

Where a drawing's inside is: its ink closed with a wide disc and its holes filled, computed here
independently of the service's own outline closing, so the body colour error does not grade the
service with its own ruler.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PALETTE = [(200, 30, 40), (30, 90, 200), (30, 140, 60), (240, 190, 30), (130, 50, 160), (240, 120, 30),
           (20, 130, 130), (230, 90, 150)]
"""Dot colours (RGB), saturated enough that the page and the service read them as hints."""
CLOSING = 12
"""Radius (px at 256) of the closing that finds a doodle's inside."""
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class DevDoodle:
    """One real drawing with three dots: RGB uint8 `drawing`, the `body` the dots colour, its
    `colour` (RGB), true `category` and the word it was drawn for."""

    drawing: np.ndarray
    body: np.ndarray
    colour: tuple[int, int, int]
    category: str
    word: str


def inside_of(drawing: np.ndarray) -> np.ndarray:
    """Boolean mask of what the drawing encloses once its openings up to ~2 x CLOSING are shut."""
    ink = (drawing.min(axis=2) < 160).astype(np.uint8)
    radius = max(1, int(round(CLOSING * drawing.shape[0] / 256)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    closed = cv2.morphologyEx(np.pad(ink, radius + 1), cv2.MORPH_CLOSE, disc)[radius + 1:-radius - 1, radius + 1:-radius - 1]
    flood = closed.copy()
    mask = np.zeros((flood.shape[0] + 2, flood.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, mask, (0, 0), 1)
    return (flood == 0) | (closed > 0) & (ink == 0)


def with_dots(drawing: np.ndarray, rng: np.random.Generator, colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The drawing with three dots of `colour` inside it, and the body mask they colour."""
    inside = inside_of(drawing)
    ink = drawing.min(axis=2) < 160
    room = cv2.distanceTransform((inside & ~ink).astype(np.uint8), cv2.DIST_L2, 3)
    radius = max(3, drawing.shape[0] // 64)
    spots = np.argwhere(room > 2 * radius)
    out = drawing.copy()
    if len(spots) == 0:
        return out, inside
    for y, x in spots[rng.choice(len(spots), size=min(3, len(spots)), replace=False)]:
        cv2.circle(out, (int(x), int(y)), radius, colour, -1)
    body = cv2.erode(inside.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return out, body


def available(root: str | Path) -> bool:
    return (Path(root) / MANIFEST).is_file()


def load_dev_doodles(root: str | Path, seed: int = 0) -> list[DevDoodle]:
    """Every drawing of `root`'s manifest, dotted with one palette colour each (from `seed`)."""
    root = Path(root)
    if not available(root):
        raise FileNotFoundError(f"{root}: no {MANIFEST}; point it at ../shared/data/doodles-dev")
    rows = list(csv.DictReader((root / MANIFEST).open()))
    rng = np.random.default_rng(seed)
    out = []
    for i, row in enumerate(rows):
        image = cv2.imread(str(root / row["file"]), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"{root / row['file']}: missing or not an image")
        colour = PALETTE[i % len(PALETTE)]
        dotted, body = with_dots(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), rng, colour)
        out.append(DevDoodle(dotted, body, colour, row["class"], row.get("word", row["class"])))
    return out
