"""A shopper's drawing -> the colorizer's input, with the same steps as `registry.colorize_png`.

The drawing is padded square with white paper, split into ink and colour hints at full
resolution, then resized: lines by area averaging, hints by nearest neighbour. Done in the API
process so the Colorizer (the GPU worker) receives small uint8 arrays and only runs the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sketch2fashion.imaging.hints import resize_hints, split_sketch
from sketch2fashion.imaging.io import resize_square, square_pad
from sketch2fashion.serving.config import PHOTO_MEDIA_TYPES
from sketch2fashion.models.inputs import to_generator_batch, to_images


@dataclass(frozen=True)
class PreparedSketch:
    """One drawing at the model's size: edges (S x S), hint RGB (S x S x 3), hint mask (S x S)."""

    edges: np.ndarray
    hint_rgb: np.ndarray
    hint_mask: np.ndarray
    hints: int
    """Separate colour marks (dots, strokes) in the drawing: what the hints metric counts."""
    drawing: np.ndarray
    """The square-padded drawing (RGB uint8), which the catalog search also looks at."""


def prepare_sketch(rgb: np.ndarray, size: int) -> PreparedSketch:
    square = square_pad(rgb)
    edges, hints = split_sketch(square)
    small = resize_hints(hints, size)
    return PreparedSketch(edges=resize_square(edges, size), hint_rgb=small.rgb, hint_mask=small.mask,
                          hints=count_marks(hints.mask), drawing=square)


def count_marks(mask: np.ndarray) -> int:
    """Connected hinted regions (8-connectivity): one per dot or stroke the shopper painted."""
    if not mask.any():
        return 0
    count, _ = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
    return int(count) - 1


def generator_input(edges: list[np.ndarray], hint_rgb: list[np.ndarray],
                    hint_mask: list[np.ndarray]) -> np.ndarray:
    """Stacked prepared sketches -> float32 N x 5 x S x S (models/inputs.py encoding)."""
    return to_generator_batch(edges, hint_rgb, hint_mask).numpy()


def photos_to_uint8(photos: np.ndarray) -> np.ndarray:
    """Colorizer output N x 3 x S x S in [-1, 1] -> N x S x S x 3 uint8 RGB."""
    return to_images(torch.from_numpy(np.asarray(photos, dtype=np.float32)))


_PNG_FILTER_UP = ([cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
                  if hasattr(cv2, "IMWRITE_PNG_FILTER") else [])  # older OpenCV: adaptive filters


def encode_photo_png(photo: np.ndarray, compression: int = 6,
                     strategy: int = cv2.IMWRITE_PNG_STRATEGY_RLE) -> bytes:
    """A generated photo (S x S x 3 uint8 RGB) as PNG bytes at zlib `compression` (0-9).

    Lossless whatever the settings; they only trade bytes for the API's CPU. The row filter is
    fixed to Up and zlib runs the RLE `strategy`: libpng's adaptive filtering and zlib's match
    search cost most of the time. Measured (thread CPU, cv2 5.0 / libpng 1.6, 5 data/raw/top
    photos at 256 px, plus sigma-3 noise to look generated), level 1: default 1.6 ms / 32 KB
    (noisy 3.4 ms / 114 KB), RLE + Up 0.7 ms / 32 KB (1.5 ms / 99 KB). Under RLE, levels 1-9
    give the same bytes; pass cv2.IMWRITE_PNG_STRATEGY_DEFAULT for the level to trade again.
    """
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression),  # first: it resets the strategy
              cv2.IMWRITE_PNG_STRATEGY, int(strategy), *_PNG_FILTER_UP]
    return _encode_rgb(photo, ".png", params)


def encode_photo_jpeg(photo: np.ndarray, quality: int = 92) -> bytes:
    """A generated photo (S x S x 3 uint8 RGB) as baseline JPEG at `quality` (1-100)."""
    return _encode_rgb(photo, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(quality)])


def _encode_rgb(photo: np.ndarray, ext: str, params: list[int]) -> bytes:
    """RGB uint8 -> file bytes through OpenCV (which takes BGR)."""
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(photo[..., ::-1]), params)
    if not ok:
        raise ValueError(f"{ext[1:].upper()} encoding failed")
    return buf.tobytes()


def encode_photo(photo: np.ndarray, fmt: str, *, png_compression: int = 6, jpeg_quality: int = 92) -> bytes:
    """A generated photo in `fmt` (PHOTO_MEDIA_TYPES' keys).

    Why JPEG exists at all: a generated 256 px photo is textured, so even fast PNG settings take
    ~2.3 ms of the API's CPU and ~92 KB; JPEG at quality 92 takes ~0.4 ms and ~10 KB
    (bench/NOTES.md, `python bench/api_steps.py`). PNG stays for clients that want it lossless.
    """
    if fmt == "png":
        return encode_photo_png(photo, png_compression)
    if fmt == "jpeg":
        return encode_photo_jpeg(photo, jpeg_quality)
    raise ValueError(f"unknown photo format {fmt!r}; expected one of {sorted(PHOTO_MEDIA_TYPES)}")


def probe_sketch(size: int) -> PreparedSketch:
    """A fixed drawing (a shirt-like outline with one red hint) every new champion must colorize."""
    img = np.full((size, size, 3), 255, np.uint8)
    pen = max(1, size // 64)
    cv2.rectangle(img, (size // 4, size // 5), (3 * size // 4, 4 * size // 5), (0, 0, 0), pen)
    cv2.line(img, (size // 4, size // 5), (size // 10, size // 2), (0, 0, 0), pen)
    cv2.line(img, (3 * size // 4, size // 5), (9 * size // 10, size // 2), (0, 0, 0), pen)
    cv2.circle(img, (size // 2, size // 2), max(2, size // 16), (220, 30, 30), -1)
    return prepare_sketch(img, size)
