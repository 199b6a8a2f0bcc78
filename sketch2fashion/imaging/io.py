"""Safe image decoding and atomic PNG writing.

Shop photos and shopper uploads arrive in every format, mode and state of repair, so decoding is
the one place that turns them into the project's single image type (RGB uint8 HxWx3) or refuses
them with a short, countable reason. Sizes are checked from the header *before* any pixel is
decoded, so a decompression bomb costs nothing; Pillow's global `Image.MAX_IMAGE_PIXELS` is
neither relied on nor changed, because the server and the pipeline share this code.

Memory: the decoded image is turned into RGB uint8 a stripe of rows at a time (alpha composited
on white in uint8, through Pillow's premultiplied "RGBa"), so a decode holds the decoder's own
pixels plus a few MB, never float copies of the whole image. Uploads (`decode_upload`) go further:
they are decoded within a budget tied to the size that is served (`decode_budget`): a JPEG is
decoded reduced by its DCT scaling (1/2, 1/4, 1/8), any image is box-reduced stripe by stripe,
and what no reduction brings under the budget (a large PNG: its decoder has no reduced mode) is
refused from its header. A process decodes at most CONCURRENT_DECODES worst-case uploads at once.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import math
import os
import struct
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

# Formats a shop or a phone produces. Others (EPS, PSD, ...) are refused: EPS would even start
# Ghostscript, which untrusted uploads must never reach.
ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")
UPLOAD_FORMATS = ("PNG", "JPEG", "MPO", "WEBP")
"""What the API accepts from shoppers (MPO: a phone's JPEG with extra frames, decoded as JPEG)."""
UPLOAD_FORMAT_NAMES = "PNG, JPEG or WebP"
DECODE_SIDE_FACTOR = 4
"""An upload may hold, while it decodes, as much memory as an RGBA image of DECODE_SIDE_FACTOR x
the served side, squared (16 MiB at max_side 512): a PNG up to 2048 x 2048 px, any JPEG that its
DCT scaling brings under that."""
CONCURRENT_DECODES = 4
"""Worst-case upload decodes one process runs at once; others wait (2 CPU cores gain nothing from
more, and 32 uploads in flight then hold 4 budgets, not 32)."""
_STRIPE_BYTES = 2 * 1024 * 1024
"""Rows converted to RGB uint8 at a time (at 4 bytes a pixel)."""
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
"""Pillow's storage per decoded pixel; every other mode takes 4 bytes (RGB included)."""
_WEBP_BYTES_PER_PIXEL = 16
"""libwebp's canvas and previous-frame buffers, the frame Pillow copies out, and the image: 4 x 4
bytes (a 1000 x 1000 RGBA WebP measured 13 bytes a pixel of peak RSS in one process)."""
_KNOWN_OTHER_FORMATS = ((b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                        (b"%PDF", "PDF"), (b"8BPS", "PSD"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"))
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PIXEL_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"eXIf"}
"""What decoding needs; text, ICC and animation chunks are dropped before Pillow parses them
(compressed text alone may otherwise inflate to 64 MB held per image)."""
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
    return _decode(data, formats=ALLOWED_FORMATS, max_pixels=max_pixels, min_side=min_side)


def decode_upload(data: bytes, *, max_side: int, max_pixels: int, min_side: int) -> np.ndarray:
    """A shopper's upload (PNG, JPEG or WebP) as upright RGB uint8, longer side at most `max_side`.

    Decoded within `decode_budget(max_side)` bytes, reduced while decoding where the format allows;
    an image that cannot fit is refused from its header as "too large".
    """
    rgb = _decode(data, formats=UPLOAD_FORMATS, max_pixels=max_pixels, min_side=min_side,
                  max_side=max_side, budget=decode_budget(max_side))
    return fit_within(rgb, max_side)


def decode_budget(max_side: int) -> int:
    """Bytes one upload may hold while it decodes, for images served at `max_side` (see DECODE_SIDE_FACTOR)."""
    return 4 * (DECODE_SIDE_FACTOR * max_side) ** 2


def _decode(data: bytes, *, formats: tuple[str, ...], max_pixels: int, min_side: int,
            max_side: int | None = None, budget: int | None = None) -> np.ndarray:
    if not data:
        raise ImageRejected("empty file")
    img = _open_header(_pixel_chunks_only(data), formats)
    with img:
        check_size(img.size, max_pixels=max_pixels, min_side=min_side)
        full_size = img.size
        if max_side is not None:
            _draft(img, max_side)
        need = _decode_bytes(img, data, full_size)
        if budget is not None and need > budget:
            width, height = full_size
            advice = "send it smaller" + ("" if img.format in ("JPEG", "MPO") else ", or as a JPEG")
            raise ImageRejected("too large", f"a {width}x{height} {img.format} takes {_mb(need)} MB to decode "
                                f"(max {_mb(budget)} MB); {advice}")
        with _decode_memory(budget).hold(need) if budget is not None else contextlib.nullcontext():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    img.load()
            except Image.DecompressionBombError as exc:
                raise ImageRejected("too large", str(exc)) from exc
            except _DECODE_ERRORS as exc:
                raise ImageRejected("corrupt or truncated image", str(exc) or type(exc).__name__) from exc
            orientation = _exif_orientation(img)
            rgb = _to_rgb_uint8(img, _reduce_factor(img.size, max_side))
    return _upright(rgb, orientation)


def check_size(size: tuple[int, int], *, max_pixels: int, min_side: int) -> None:
    """Refuse a (width, height) that is a decompression bomb or too small to show a garment."""
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected("too large", f"{width}x{height} = {width * height} px (max {max_pixels})")
    if min(width, height) < min_side:
        raise ImageRejected("too small", f"{width}x{height} (min {min_side} px)")


def _open_header(data: bytes, formats: tuple[str, ...] = ALLOWED_FORMATS) -> Image.Image:
    """Parse only the header: format and size are known, no pixel data has been decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=_decodable_formats(formats))
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        other = next((name for magic, name in _KNOWN_OTHER_FORMATS if data.startswith(magic)), None)
        if other is not None and other not in formats:
            raise ImageRejected("unsupported format", other) from exc
        raise ImageRejected("not an image") from exc
    except _DECODE_ERRORS as exc:
        raise ImageRejected("corrupt or truncated image", str(exc) or type(exc).__name__) from exc


def _decodable_formats(formats: tuple[str, ...] = ALLOWED_FORMATS) -> tuple[str, ...]:
    """The allowed formats this Pillow build can open (plugins register lazily, hence init())."""
    Image.init()
    return tuple(fmt for fmt in formats if fmt in Image.OPEN)


def _pixel_chunks_only(data: bytes) -> bytes:
    """A PNG without the chunks pixels do not need (_PNG_PIXEL_CHUNKS); other formats as they are.

    A chunk that runs past the end stops the copy there, which Pillow then reports as truncated.
    """
    if not data.startswith(_PNG_SIGNATURE):
        return data
    kept, pos = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            kept.append(data[pos:])  # truncated: let the decoder say so
            break
        if kind in _PNG_PIXEL_CHUNKS:
            kept.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    return b"".join(kept)


def _draft(img: Image.Image, max_side: int) -> None:
    """Ask a JPEG to decode at the smallest DCT scale (1/2, 1/4, 1/8) that still gives max_side."""
    width, height = img.size
    longest = max(width, height)
    if img.format not in ("JPEG", "MPO") or longest <= max_side:
        return
    scale = max_side / longest
    img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))


def _decode_bytes(img: Image.Image, data: bytes, full_size: tuple[int, int]) -> int:
    """Memory the decoder will hold for `img` at its (drafted) size."""
    width, height = img.size
    per_pixel = _WEBP_BYTES_PER_PIXEL if img.format == "WEBP" else _BYTES_PER_PIXEL.get(img.mode, 4)
    need = width * height * per_pixel
    if img.format in ("JPEG", "MPO") and _jpeg_buffers_whole_image(img, data):
        need += _jpeg_coefficient_bytes(img, full_size)
    return need


def _jpeg_buffers_whole_image(img: Image.Image, data: bytes) -> bool:
    """libjpeg keeps every DCT coefficient of the full-size image for a progressive JPEG, and for a
    sequential one whose first scan lacks a component (several scans): 2 bytes per sample."""
    if img.info.get("progressive") or img.info.get("progression"):
        return True
    components = len(getattr(img, "layer", None) or []) or 3
    first_scan = _jpeg_first_scan_components(data)
    return first_scan is None or first_scan < components


def _jpeg_first_scan_components(data: bytes) -> int | None:
    """Components in the first scan (SOS) of a JPEG's main image; None when the markers do not parse.

    Walks the marker segments by their lengths, so a thumbnail inside EXIF (APP1) is skipped.
    """
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xDA:
            return data[pos + 4] if pos + 4 < len(data) else None
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return None


def _jpeg_coefficient_bytes(img: Image.Image, full_size: tuple[int, int]) -> int:
    width, height = full_size
    layers = getattr(img, "layer", None) or [(0, 1, 1, 0)] * 3
    h_max = max(layer[1] for layer in layers) or 1
    v_max = max(layer[2] for layer in layers) or 1
    samples = sum(math.ceil(width * layer[1] / h_max / 8) * math.ceil(height * layer[2] / v_max / 8) * 64
                  for layer in layers)
    return 2 * samples


def _reduce_factor(size: tuple[int, int], max_side: int | None) -> int:
    """The whole-number box reduction that still leaves the longer side at least max_side."""
    if max_side is None:
        return 1
    return max(1, max(size) // max_side)


def _mb(nbytes: int) -> int:
    return math.ceil(nbytes / (1024 * 1024))


class DecodeMemory:
    """Bytes the uploads being decoded in one process may hold together; a decode waits its turn."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        nbytes = min(nbytes, self.capacity)
        with self._changed:
            self._changed.wait_for(lambda: self.used + nbytes <= self.capacity)
            self.used += nbytes
        try:
            yield
        finally:
            with self._changed:
                self.used -= nbytes
                self._changed.notify_all()


@functools.cache
def _decode_memory(budget: int) -> DecodeMemory:
    """One gate per budget (in practice one per process: max_side is fixed)."""
    return DecodeMemory(CONCURRENT_DECODES * budget)


_ORIENTATIONS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}
"""EXIF orientation -> how to show the stored pixels upright (what ImageOps.exif_transpose does)."""


def _exif_orientation(img: Image.Image) -> int:
    """Phones store photos sideways plus an EXIF flag; a broken flag leaves the image as stored."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF must not cost us an otherwise good photo
        return 1
    return value if isinstance(value, int) else 1


def _upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    turn = _ORIENTATIONS.get(orientation)
    return rgb if turn is None else np.ascontiguousarray(turn(rgb))


def _to_rgb_uint8(img: Image.Image, factor: int = 1) -> np.ndarray:
    """Any Pillow mode -> RGB uint8, box-reduced by `factor`, one stripe of rows at a time.

    Transparency is composited on white like a product shot, in uint8: premultiplied colour plus
    (255 - alpha), which is exactly rint(colour * alpha / 255 + 255 - alpha).
    """
    width, height = img.size
    to_reducible, to_rgb = _stripe_steps(img)
    rows = max(factor, _STRIPE_BYTES // max(1, width * 4) // factor * factor)
    out = np.empty((math.ceil(height / factor), math.ceil(width / factor), 3), np.uint8)
    for top in range(0, height, rows):
        try:
            part = to_reducible(img.crop((0, top, width, min(height, top + rows))))
        except ValueError as exc:
            raise ImageRejected("unsupported colour mode", img.mode) from exc
        if factor > 1:
            part = part.reduce(factor)
        out[top // factor:top // factor + part.height] = to_rgb(np.asarray(part))
    return out


def _stripe_steps(img: Image.Image) -> tuple[Callable[[Image.Image], Image.Image], Callable[[np.ndarray], np.ndarray]]:
    """(stripe -> a mode Pillow can reduce, reduced stripe array -> RGB uint8) for img's mode."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        top = _grey_top(img)
        to_int = (lambda part: part.convert("I")) if mode.startswith("I;16") else (lambda part: part)
        return to_int, lambda arr: _grey_to_rgb(_scale_to_uint8(arr, top))
    if _has_alpha(img):
        if mode == "RGBA":
            return lambda part: part.convert("RGBa"), _on_white
        return lambda part: part.convert("RGBA").convert("RGBa"), _on_white
    if mode == "RGB":
        return lambda part: part, lambda arr: arr
    if mode in ("L", "1"):
        return lambda part: part.convert("L"), _grey_to_rgb
    return lambda part: part.convert("RGB"), lambda arr: arr


def _on_white(rgba_premultiplied: np.ndarray) -> np.ndarray:
    rgb = rgba_premultiplied[..., :3].astype(np.uint16) + (255 - rgba_premultiplied[..., 3:4])
    return np.minimum(rgb, 255).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info


def _grey_top(img: Image.Image) -> float:
    """The white level of a 16/32-bit or float grey image, from the whole image's extrema."""
    highest = img.getextrema()[1]
    if img.mode == "F":
        return 1.0 if highest <= 1.0 else 255.0
    if img.mode.startswith("I;16") or highest > 255:
        return 65535.0
    return 255.0


def _scale_to_uint8(arr: np.ndarray, top: float) -> np.ndarray:
    """16-bit and float greyscale to 8 bits, keeping the full tonal range (white = `top`)."""
    return np.clip(np.rint(arr.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


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
