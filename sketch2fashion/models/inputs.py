"""Array <-> tensor conversions shared by training and serving.

Keeping them in one place is what makes the served model see exactly the inputs it was trained
on. The generator input has 9 channels, each in [-1, 1] or [0, 1]:

  0     edge map: uint8 scaled linearly, 0 -> -1 and 255 -> +1. The edges stage stores black ink
        on white paper, so ink = -1 and paper = +1; a served sketch must use the same polarity.
  1..3  hint RGB: uint8 scaled to [-1, 1] where the mask is set, and exactly 0 elsewhere.
  4     hint mask: 0 (no hint) or 1 (hint). We keep 0/1 rather than -1/+1 so that "no hint"
        is all zeros across the four hint channels: an unhinted sketch then contributes nothing
        through those channels, whatever colour garbage the RGB array held there.
  5..7  flat fill RGB (imaging/flat_fill.py): like the hints, [-1, 1] where filled, 0 elsewhere.
  8     fill weight: 0 (unfilled), 0.5 (guessed), 1 (a hint's own region).

Generators registered before the flat fill read channels 0..4 only (`SKETCH_CHANNELS`).
Photos (targets and outputs) are RGB, 3 x H x W in [-1, 1], matching the generator's output.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | Sequence[np.ndarray]


SKETCH_PLANES = 9
"""A prepared sketch packed as uint8 planes, in the order of the generator's channels: edges,
hint RGB, hint mask (0/255), fill RGB, fill weight (0/128/255). Datasets and the serving path
move sketches in this form (a ninth of float32's bytes) and convert whole batches at once."""


def to_generator_input(edges_u8: np.ndarray, hint_rgb_u8: np.ndarray, hint_mask: np.ndarray,
                       fill_rgb_u8: np.ndarray, fill_weight_u8: np.ndarray) -> torch.Tensor:
    """One prepared sketch -> float32 tensor 9 x H x W.

    edges_u8: H x W uint8; hint_rgb_u8 / fill_rgb_u8: H x W x 3 uint8 RGB; hint_mask: H x W, any
    dtype, nonzero = hinted pixel; fill_weight_u8: H x W uint8, 0 / 128 / 255 (flat_fill.FlatFill).
    """
    return to_generator_batch(edges_u8[None], hint_rgb_u8[None], hint_mask[None], fill_rgb_u8[None],
                              fill_weight_u8[None])[0]


def to_generator_batch(edges_u8: ArrayLike, hint_rgb_u8: ArrayLike, hint_mask: ArrayLike,
                       fill_rgb_u8: ArrayLike, fill_weight_u8: ArrayLike) -> torch.Tensor:
    """N prepared sketches (arrays stacked on axis 0, or sequences of per-image arrays) -> N x 9 x H x W."""
    return unpack_sketches(pack_sketches(edges_u8, hint_rgb_u8, hint_mask, fill_rgb_u8, fill_weight_u8))


def pack_sketches(edges_u8: ArrayLike, hint_rgb_u8: ArrayLike, hint_mask: ArrayLike,
                  fill_rgb_u8: ArrayLike, fill_weight_u8: ArrayLike) -> np.ndarray:
    """N prepared sketches -> uint8 N x SKETCH_PLANES x H x W (see SKETCH_PLANES)."""
    edges = _stack(edges_u8)
    hints = _stack(hint_rgb_u8)
    masks = _stack(hint_mask)
    fills = _stack(fill_rgb_u8)
    weights = _stack(fill_weight_u8)
    if edges.ndim == 4 and edges.shape[-1] == 1:
        edges = edges[..., 0]
    if edges.ndim != 3:
        raise ValueError(f"edge maps must be N x H x W, got shape {edges.shape}")
    n, h, w = edges.shape
    for array, what, shape in ((hints, "hint RGB", (n, h, w, 3)), (masks, "hint mask", (n, h, w)),
                               (fills, "fill RGB", (n, h, w, 3)), (weights, "fill weight", (n, h, w))):
        if array.shape != shape:
            raise ValueError(f"{what} must be N x H x W{' x 3' if len(shape) == 4 else ''} = {shape}, "
                             f"got {array.shape}")
    for array, what in ((edges, "edge map"), (hints, "hint RGB"), (fills, "fill RGB"), (weights, "fill weight")):
        _require_uint8(array, what)
    packed = np.empty((n, SKETCH_PLANES, h, w), np.uint8)
    packed[:, 0] = edges
    packed[:, 1:4] = hints.transpose(0, 3, 1, 2)
    packed[:, 4] = np.where(masks != 0, 255, 0)
    packed[:, 5:8] = fills.transpose(0, 3, 1, 2)
    packed[:, 8] = weights
    return packed


def unpack_sketches(packed: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 N x SKETCH_PLANES x H x W -> the generator's float32 input N x 9 x H x W (module doc).

    Hint and fill colours are zeroed where their mask / weight is 0, whatever the planes held.
    """
    tensor = torch.as_tensor(packed)
    if tensor.dim() != 4 or tensor.shape[1] != SKETCH_PLANES or tensor.dtype != torch.uint8:
        raise ValueError(f"packed sketches must be uint8 N x {SKETCH_PLANES} x H x W, "
                         f"got {tensor.dtype} {tuple(tensor.shape)}")
    x = tensor.to(torch.float32)
    out = x / 127.5 - 1.0
    hinted = (x[:, 4:5] > 0).to(torch.float32)
    weight = x[:, 8:9] / 255.0
    out[:, 1:4] *= hinted
    out[:, 4:5] = hinted
    out[:, 5:8] *= (weight > 0).to(torch.float32)
    out[:, 8:9] = weight
    return out


def photos_to_signed(photos_u8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 photos N x 3 x H x W (as datasets carry them) -> float32 in [-1, 1]."""
    return _u8_to_signed(torch.as_tensor(photos_u8))


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
