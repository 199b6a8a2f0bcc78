"""A shopper's drawing -> the colorizer's input, with the same steps as `registry.colorize_png`.

The drawing is padded square with white paper, split into ink and colour hints at full
resolution, then resized: lines by area averaging, hints by nearest neighbour. Then the same
preprocessing as in training (`imaging.flat_fill.prepare_fill`): openings of a quick outline
closed, hints spread over their regions. Done in the API process so the Colorizer (the GPU
worker) receives one small packed uint8 array (models.inputs.pack_sketches) and only runs the
model; the stroke ends left open come back to the page, which asks the shopper to close them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sketch2fashion.imaging.flat_fill import prepare_drawing
from sketch2fashion.imaging.io import square_pad
from sketch2fashion.models.inputs import pack_sketches, to_images, unpack_sketches
from sketch2fashion.serving.config import PHOTO_MEDIA_TYPES


@dataclass(frozen=True)
class PreparedSketch:
    """One drawing at the model's size, packed for the generator (uint8 9 x S x S, see
    models.inputs.SKETCH_PLANES), with what the page and the metrics want to know of it."""

    packed: np.ndarray
    hints: int
    """Separate colour marks (dots, strokes) in the drawing: what the hints metric counts."""
    drawing: np.ndarray
    """The square-padded drawing (RGB uint8), which the catalog search also looks at."""
    open_ends: np.ndarray
    """Stroke ends (N x 2, x y as fractions of the square drawing) where the outline is still
    open and colour would otherwise run out: where the page asks the shopper to close it."""

    @property
    def hint_pixels(self) -> np.ndarray:
        """The colours of the hinted pixels (uint8 N x 3 RGB) split from the drawing, for the
        catalog search's hint colour."""
        rgb, mask = self.packed[HINT_RGB], self.packed[HINT_MASK]
        return np.ascontiguousarray(rgb[:, mask > 0].T)


HINT_RGB, HINT_MASK = slice(1, 4), 4
"""Where the hint colours and mask are among the packed planes (models.inputs.SKETCH_PLANES)."""


def prepare_sketch(rgb: np.ndarray, size: int) -> PreparedSketch:
    square = square_pad(rgb)
    prepared = prepare_drawing(square, size)
    packed = pack_sketches(prepared.edges[None], prepared.hints.rgb[None], prepared.hints.mask[None],
                           prepared.fill.rgb[None], prepared.fill.weight[None])[0]
    return PreparedSketch(packed=packed, hints=count_marks(prepared.hints.mask), drawing=square,
                          open_ends=(prepared.open_ends.astype(np.float64) + 0.5) / size)


def count_marks(mask: np.ndarray) -> int:
    """Connected hinted regions (8-connectivity): one per dot or stroke the shopper painted."""
    if not mask.any():
        return 0
    count, _ = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
    return int(count) - 1


def generator_input(packed: list[np.ndarray]) -> np.ndarray:
    """Prepared sketches (packed uint8 9 x S x S each) -> float32 N x 9 x S x S (models/inputs.py)."""
    return unpack_sketches(np.stack(packed)).numpy()


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
    (bench/NOTES.md, bench/experiments/api-steps.json). PNG stays for clients that want it lossless.
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
