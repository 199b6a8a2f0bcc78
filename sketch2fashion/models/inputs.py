"""Array <-> tensor conversions shared by training and serving.

Keeping them in one place is what makes the served model see exactly the inputs it was trained
on. The generator input has 5 channels, each in [-1, 1] or {0, 1}:

  0     edge map: uint8 scaled linearly, 0 -> -1 and 255 -> +1. The edges stage stores black ink
        on white paper, so ink = -1 and paper = +1; a served sketch must use the same polarity.
  1..3  hint RGB: uint8 scaled to [-1, 1] where the mask is set, and exactly 0 elsewhere.
  4     hint mask: 0 (no hint) or 1 (hint). We keep 0/1 rather than -1/+1 so that "no hint"
        is all zeros across the four hint channels: an unhinted sketch then contributes nothing
        through those channels, whatever colour garbage the RGB array held there.

Photos (targets and outputs) are RGB, 3 x H x W in [-1, 1], matching the generator's Tanh.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | Sequence[np.ndarray]


def to_generator_input(
    edges_u8: np.ndarray, hint_rgb_u8: np.ndarray, hint_mask: np.ndarray
) -> torch.Tensor:
    """One sketch -> float32 tensor 5 x H x W.

    edges_u8: H x W (or H x W x 1) uint8; hint_rgb_u8: H x W x 3 uint8 RGB;
    hint_mask: H x W, any dtype, nonzero = hinted pixel.
    """
    return to_generator_batch(edges_u8[None], hint_rgb_u8[None], hint_mask[None])[0]


def to_generator_batch(edges_u8: ArrayLike, hint_rgb_u8: ArrayLike, hint_mask: ArrayLike) -> torch.Tensor:
    """N sketches (arrays stacked on axis 0, or sequences of per-image arrays) -> N x 5 x H x W."""
    edges = _stack(edges_u8)
    hints = _stack(hint_rgb_u8)
    masks = _stack(hint_mask)
    if edges.ndim == 4 and edges.shape[-1] == 1:
        edges = edges[..., 0]
    if edges.ndim != 3:
        raise ValueError(f"edge maps must be N x H x W, got shape {edges.shape}")
    n, h, w = edges.shape
    if hints.shape != (n, h, w, 3):
        raise ValueError(f"hint RGB must be N x H x W x 3 = {(n, h, w, 3)}, got {hints.shape}")
    if masks.shape != (n, h, w):
        raise ValueError(f"hint mask must be N x H x W = {(n, h, w)}, got {masks.shape}")
    _require_uint8(edges, "edge map")
    _require_uint8(hints, "hint RGB")

    mask = torch.from_numpy(np.ascontiguousarray(masks != 0)).to(torch.float32)[:, None]
    edge_t = _u8_to_signed(torch.from_numpy(np.ascontiguousarray(edges))[:, None])
    hint_t = _u8_to_signed(torch.from_numpy(np.ascontiguousarray(hints)).permute(0, 3, 1, 2)) * mask
    return torch.cat([edge_t, hint_t, mask], dim=1).contiguous()


def to_target(photo_rgb_u8: ArrayLike) -> torch.Tensor:
    """Photo(s) H x W x 3 (or N x H x W x 3) uint8 RGB -> float32 3 x H x W (N x 3 x H x W) in [-1, 1]."""
    photos = _stack(photo_rgb_u8)
    if photos.ndim not in (3, 4) or photos.shape[-1] != 3:
        raise ValueError(f"photos must be H x W x 3 or N x H x W x 3 RGB, got shape {photos.shape}")
    _require_uint8(photos, "photo")
    tensor = _u8_to_signed(torch.from_numpy(np.ascontiguousarray(photos)))
    return tensor.permute(2, 0, 1).contiguous() if photos.ndim == 3 else tensor.permute(0, 3, 1, 2).contiguous()


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """Generator output 3 x H x W in [-1, 1] (any dtype or device) -> H x W x 3 uint8 RGB."""
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected a 3 x H x W tensor, got shape {tuple(tensor.shape)}")
    return to_images(tensor[None])[0]


def to_images(batch: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W in [-1, 1] -> N x H x W x 3 uint8 RGB (rounded, clamped)."""
    if batch.dim() != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected an N x 3 x H x W tensor, got shape {tuple(batch.shape)}")
    # float32 first: bf16 outputs (autocast) cannot be rounded to 8 bits exactly otherwise.
    scaled = (batch.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _u8_to_signed(values: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 -1..1 (exact inverse of to_images up to rounding)."""
    return values.to(torch.float32) / 127.5 - 1.0


def _stack(arrays: ArrayLike) -> np.ndarray:
    return arrays if isinstance(arrays, np.ndarray) else np.stack([np.asarray(a) for a in arrays])


def _require_uint8(array: np.ndarray, what: str) -> None:
    if array.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (0..255), got {array.dtype}; float inputs are ambiguous")
