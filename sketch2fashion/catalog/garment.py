"""The photo as search compares photos: the garment on white, like the photos the encoder learned from.

A shop's product shots on clean white go in as they are. A photo of a garment on a floor, a bed or
a hanger (a shop without a studio, a shopper's snapshot uploaded to /search) has its garment
isolated onto white first, the same way ingest prepares training photos (`imaging/isolate.py`):
embedded raw, the floor dominated the vector and the colour histogram.
"""
from __future__ import annotations

import numpy as np

from sketch2fashion.imaging.isolate import (
    PLAUSIBLE_HIGH, PLAUSIBLE_LOW, choose_method, composite_on_white, isolate_garment, mask_fraction,
)


def garment_on_white(rgb: np.ndarray, *, iters: int = 4) -> np.ndarray:
    """`rgb` itself when it is on clean white, else its garment composited onto white; a failed
    isolation (an implausible mask share) keeps the whole photo: better the floor than a fragment."""
    if choose_method(rgb) == "threshold":
        return rgb
    mask = isolate_garment(rgb, method="grabcut", iters=iters)
    return composite_on_white(rgb, mask) if PLAUSIBLE_LOW <= mask_fraction(mask) <= PLAUSIBLE_HIGH else rgb
