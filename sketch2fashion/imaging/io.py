"""Safe image decoding and atomic PNG writing.

Shop photos and shopper uploads arrive in every format, mode and state of repair, so decoding is
the one place that turns them into the project's single image type (RGB uint8 HxWx3) or refuses
them with a short, countable reason. Sizes are checked from the header *before* any pixel is
decoded, so a decompression bomb costs nothing; Pillow's global `Image.MAX_IMAGE_PIXELS` is
neither relied on nor changed, because the server and the pipeline share this code.
"""
from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a shop or a phone produces. Others (EPS, PSD, ...) are refused: EPS would even start
# Ghostscript, which untrusted uploads must never reach.
ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Worst case for an uncompressed image: 16-bit RGBA is 8 bytes a pixel; plus room for metadata.
_BYTES_PER_PIXEL_BOUND = 8
_METADATA_SLACK = 16 * 1024 * 1024
# Errors Pillow's decoders raise on damaged data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

RGB = tuple[int, int, int]


class ImageRejected(ValueError):
    """An input that cannot become a training or query image.

    `reason` is a short fixed phrase ("empty file", "not an image", "too small", ...) that reports
    count by; the message adds the specifics ("too small: 1x1 (min 32 px)").
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def load_rgb(path: str | Path, *, max_pixels: int = 50_000_000, min_side: int = 32) -> np.ndarray:
    """Read an image file as upright RGB uint8, or raise ImageRejected saying why not."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_pixels * _BYTES_PER_PIXEL_BOUND + _METADATA_SLACK:
            raise ImageRejected("too large", f"file is {size} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise ImageRejected("unreadable file", exc.strerror or type(exc).__name__) from exc
    return decode_rgb(data, max_pixels=max_pixels, min_side=min_side)


def decode_rgb(data: bytes, *, max_pixels: int = 50_000_000, min_side: int = 32) -> np.ndarray:
    """Decode encoded image bytes (an upload, a file's contents) as upright RGB uint8."""
    if not data:
        raise ImageRejected("empty file")
    img = _open_header(data)
    with img:
        check_size(img.size, max_pixels=max_pixels, min_side=min_side)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
        except Image.DecompressionBombError as exc:
            raise ImageRejected("too large", str(exc)) from exc
        except _DECODE_ERRORS as exc:
            raise ImageRejected("corrupt or truncated image", str(exc) or type(exc).__name__) from exc
        upright = _apply_exif_orientation(img)
        return _to_rgb_uint8(upright)


def check_size(size: tuple[int, int], *, max_pixels: int, min_side: int) -> None:
    """Refuse a (width, height) that is a decompression bomb or too small to show a garment."""
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected("too large", f"{width}x{height} = {width * height} px (max {max_pixels})")
    if min(width, height) < min_side:
        raise ImageRejected("too small", f"{width}x{height} (min {min_side} px)")


def _open_header(data: bytes) -> Image.Image:
    """Parse only the header: format and size are known, no pixel data has been decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=_decodable_formats())
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image") from exc
    except _DECODE_ERRORS as exc:
        raise ImageRejected("corrupt or truncated image", str(exc) or type(exc).__name__) from exc


def _decodable_formats() -> tuple[str, ...]:
    """The allowed formats this Pillow build can open (plugins register lazily, hence init())."""
    Image.init()
    return tuple(fmt for fmt in ALLOWED_FORMATS if fmt in Image.OPEN)


def _apply_exif_orientation(img: Image.Image) -> Image.Image:
    """Phones store photos sideways plus an EXIF flag; a broken flag leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - malformed EXIF must not cost us an otherwise good photo
        return img


def _to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> RGB uint8; transparency is composited on white like a product shot."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        grey = _scale_to_uint8(np.asarray(img), mode)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if _has_alpha(img):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    try:
        rgb_img = img if mode == "RGB" else img.convert("RGB")
    except ValueError as exc:
        raise ImageRejected("unsupported colour mode", mode) from exc
    return np.array(rgb_img, dtype=np.uint8)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info


def _scale_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit and float greyscale to 8 bits, keeping the full tonal range."""
    values = arr.astype(np.float64)
    if mode == "F":
        top = 1.0 if values.size and values.max() <= 1.0 else 255.0
    elif mode.startswith("I;16") or (values.size and values.max() > 255):
        top = 65535.0
    else:
        top = 255.0
    return np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an RGB (HxWx3) or single-channel (HxW) uint8 array; deterministic output."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[..., ::-1]  # OpenCV writes BGR
    elif arr.ndim != 2:
        raise ValueError(f"expected HxW or HxWx3, got shape {arr.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder + os.replace: readers see old or new, never half.

    No fsync: this guards against killed runs, not power loss, and fsync per image is slow.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would surprise whoever shares the data folder
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_png(path: str | Path, array: np.ndarray) -> str:
    """Atomically write `array` as a PNG; returns the file's sha256 (hex) for manifests."""
    data = encode_png(array)
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def square_pad(img: np.ndarray, fill_rgb: RGB | int = (255, 255, 255)) -> np.ndarray:
    """Centre `img` on a square canvas of `fill_rgb` so resizing never distorts the garment."""
    height, width = img.shape[:2]
    side = max(height, width)
    if height == width:
        return img.copy()
    canvas = np.empty((side, side) + img.shape[2:], dtype=img.dtype)
    canvas[...] = np.asarray(fill_rgb, dtype=img.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top:top + height, left:left + width] = img
    return canvas


def resize_square(img: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    """Resize a square image to size x size: INTER_AREA to shrink photos, nearest for masks."""
    height, width = img.shape[:2]
    if height != width:
        raise ValueError(f"resize_square needs a square image, got {width}x{height}; "
                         "square_pad it first")
    if height == size:
        return img.copy()
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if size < height else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def fit_within(img: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is at most `max_side`; keeps the aspect ratio."""
    height, width = img.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return img
    scale = max_side / longest
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(img, new_size, interpolation=cv2.INTER_AREA)
