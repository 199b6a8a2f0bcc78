"""Does the photo wear the colours the shopper dropped? Colour error at the hinted pixels.

SSIM mostly rewards silhouette and white background: a model can score well while painting every
garment beige. This is the CIE76 Delta E (Lab distance; ~2.3 is a just-noticeable difference)
between the generated photo and the hint colours, averaged over the hinted pixels of a sketch.
The real photo, which evaluation hints are sampled from, scores near the floor.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from sketch2fashion.models.inputs import to_images


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
