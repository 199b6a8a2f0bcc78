"""Does the photo wear the colours the shopper dropped? Colour error at the hints and over the body.

SSIM mostly rewards silhouette and white background: a model can score well while painting every
garment beige. Two CIE76 Delta E figures (Lab distance; ~2.3 is a just-noticeable difference):

- `hint_delta_e`: the photo against the hint colours at the hinted pixels themselves (a model
  can paint a red dot red and the shirt around it brown: this alone misses that);
- `body_delta_e`: the median, over the garment's body (its mask without the edge), of the photo
  against the flat fill of the hints (imaging/flat_fill.py: each hint's colour spread over its
  region), i.e. "is the shirt the colour the shopper asked for", shading included.

The real photo, which evaluation hints are sampled from, scores near the floor of the first;
on the second it pays for its own shading and patterns, which is the floor to compare with.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from sketch2fashion.models.inputs import to_images

HINTED_WEIGHT = 0.4
"""Fill weights above this come from a hint (sure or guessed); the neutral grey of a drawing
without hints (flat_fill.DEFAULT, 0.25) is not the shopper's colour and is not scored."""


def lab(rgb_u8: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb_u8).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def hint_delta_e(images: np.ndarray, hint_rgb: np.ndarray, hint_mask: np.ndarray) -> list[float]:
    """Mean Delta E over the hinted pixels, one value per image that has any hint (N x H x W x 3 uint8)."""
    out = []
    for image, hints, mask in zip(images, hint_rgb, hint_mask):
        mask = np.asarray(mask) > 0
        if not mask.any():
            continue
        diff = lab(image)[mask] - lab(hints)[mask]
        out.append(float(np.sqrt((diff ** 2).sum(axis=1)).mean()))
    return out


def hint_delta_e_of_inputs(images: np.ndarray, inputs: torch.Tensor) -> list[float]:
    """`hint_delta_e` with the hints read from generator inputs (N x 5 x H x W, models/inputs.py)."""
    return hint_delta_e(images, to_images(inputs[:, 1:4].float().cpu()), (inputs[:, 4] > 0.5).cpu().numpy())


def body_delta_e(images: np.ndarray, fill_rgb: np.ndarray, fill_mask: np.ndarray,
                 body: np.ndarray) -> list[float]:
    """Median Delta E between each image and its fill over body pixels that the fill covers,
    one value per image that has any (N x H x W x 3 uint8 images and fills, N x H x W masks)."""
    out = []
    for image, fill, filled, inside in zip(images, fill_rgb, fill_mask, body):
        where = (np.asarray(filled) > 0) & (np.asarray(inside) > 0)
        if not where.any():
            continue
        diff = lab(image)[where] - lab(fill)[where]
        out.append(float(np.median(np.sqrt((diff ** 2).sum(axis=1)))))
    return out


def body_delta_e_of_inputs(images: np.ndarray, inputs: torch.Tensor, body: torch.Tensor) -> list[float]:
    """`body_delta_e` with the fill read from generator inputs (N x 9 x H x W, models/inputs.py)."""
    return body_delta_e(images, to_images(inputs[:, 5:8].float().cpu()), (inputs[:, 8] > HINTED_WEIGHT).cpu().numpy(),
                        body.cpu().numpy())
