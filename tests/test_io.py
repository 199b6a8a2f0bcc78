"""Safe decoding: every odd input becomes RGB uint8 or a rejection with the right reason."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2fashion.imaging.io import (
    ImageRejected, decode_rgb, encode_png, fit_within, load_rgb, resize_square, save_png, square_pad,
)


def encoded(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is garbage."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"junk") + chunk(b"IEND", b"")


def reason_of(data: bytes, **kwargs) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode_rgb(data, **kwargs)
    return info.value


def test_rgb_png_round_trips_exactly():
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    out = decode_rgb(encoded(Image.fromarray(rgb)))
    assert out.dtype == np.uint8 and out.shape == (40, 50, 3)
    np.testing.assert_array_equal(out, rgb)


def test_cmyk_jpeg_becomes_rgb():
    data = encoded(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG", quality=95)
    out = decode_rgb(data)
    assert out.shape == (48, 64, 3)
    assert out[..., 0].mean() > 230 and out[..., 1].mean() < 25 and out[..., 2].mean() < 25  # red


def test_exif_rotated_jpeg_comes_out_upright():
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:20] = (255, 0, 0)   # stored top: red
    stored[20:] = (0, 0, 255)   # stored bottom: blue
    exif = Image.Exif()
    exif[0x0112] = 6            # "rotate 90 degrees clockwise to display"
    out = decode_rgb(encoded(Image.fromarray(stored), "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape == (80, 40, 3)
    assert out[40, 35, 0] > 200 and out[40, 35, 2] < 60   # red ended up on the right
    assert out[40, 4, 2] > 200 and out[40, 4, 0] < 60     # blue on the left


@pytest.mark.parametrize("mode,value,expected", [
    ("L", 100, (100, 100, 100)),
    ("1", 1, (255, 255, 255)),
    ("I;16", 65535, (255, 255, 255)),
    ("I;16", 32896, (128, 128, 128)),
])
def test_grey_modes_become_rgb(mode, value, expected):
    out = decode_rgb(encoded(Image.new(mode, (40, 40), value)))
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8
    assert tuple(out[5, 5]) == expected


def test_transparency_is_composited_on_white():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 20:, 3] = 255        # right half opaque red, left half fully transparent
    out = decode_rgb(encoded(Image.fromarray(rgba, "RGBA")))
    assert tuple(out[5, 5]) == (255, 255, 255)
    assert tuple(out[5, 30]) == (255, 0, 0)
    la = decode_rgb(encoded(Image.new("LA", (40, 40), (0, 0))))
    assert tuple(la[0, 0]) == (255, 255, 255)


def test_palette_with_transparent_index():
    img = Image.new("P", (40, 40), 1)
    img.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    img.paste(0, (0, 0, 20, 40))
    out = decode_rgb(encoded(img, transparency=0))
    assert tuple(out[5, 5]) == (255, 255, 255)
    assert tuple(out[5, 30]) == (0, 128, 0)


def test_empty_file():
    assert reason_of(b"").reason == "empty file"


def test_text_is_not_an_image():
    assert reason_of(b"id,title\n1,a shirt\n").reason == "not an image"


def test_truncated_jpeg_is_corrupt():
    rgb = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(rgb), "JPEG")
    exc = reason_of(data[: len(data) // 2])
    assert exc.reason == "corrupt or truncated image"
    assert str(exc).startswith("corrupt or truncated image: ")


def test_tiny_image_is_too_small():
    exc = reason_of(encoded(Image.new("RGB", (1, 1))), min_side=32)
    assert exc.reason == "too small"
    assert str(exc) == "too small: 1x1 (min 32 px)"


def test_decompression_bomb_is_refused_from_the_header():
    before = Image.MAX_IMAGE_PIXELS
    # The pixel data is junk, so "too large" (not "corrupt") proves nothing was decoded.
    exc = reason_of(png_header_only(10_000, 10_000), max_pixels=50_000_000)
    assert exc.reason == "too large"
    assert "10000x10000" in str(exc)
    assert Image.MAX_IMAGE_PIXELS == before  # the global guard is left alone


def test_max_pixels_applies_to_real_images():
    data = encoded(Image.new("RGB", (100, 100)))
    assert reason_of(data, max_pixels=5_000).reason == "too large"
    assert decode_rgb(data, max_pixels=10_000).shape == (100, 100, 3)


def test_huge_header_beyond_pillow_limit_is_still_a_rejection():
    assert reason_of(png_header_only(50_000, 50_000)).reason == "too large"


def test_load_rgb_reads_files_and_reports_missing(tmp_path: Path):
    path = tmp_path / "a.jpg"
    path.write_bytes(encoded(Image.new("RGB", (64, 64), (10, 20, 30)), "JPEG", quality=100))
    assert load_rgb(path).shape == (64, 64, 3)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageRejected, match="empty file"):
        load_rgb(tmp_path / "empty.jpg")
    with pytest.raises(ImageRejected) as info:
        load_rgb(tmp_path / "missing.jpg")
    assert info.value.reason == "unreadable file"


def test_save_png_is_atomic_and_round_trips(tmp_path: Path):
    rgb = np.random.default_rng(2).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    target = tmp_path / "out" / "a.png"
    digest = save_png(target, rgb)
    np.testing.assert_array_equal(load_rgb(target, min_side=1), rgb)
    import hashlib
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    save_png(tmp_path / "out" / "m.png", mask)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "m.png")), mask)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "m.png"]


def test_failed_save_leaves_old_file_and_no_temp(tmp_path: Path):
    target = tmp_path / "a.png"
    save_png(target, np.zeros((8, 8, 3), np.uint8))
    before = target.read_bytes()
    with pytest.raises((TypeError, ValueError)):
        save_png(target, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError):
        save_png(target, np.zeros((8, 8, 4), np.uint8))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_png_encoding_is_deterministic():
    rgb = np.random.default_rng(3).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    assert encode_png(rgb) == encode_png(rgb.copy())


def test_square_pad_centres_on_fill():
    img = np.zeros((10, 30, 3), np.uint8)
    out = square_pad(img, (255, 255, 255))
    assert out.shape == (30, 30, 3)
    assert (out[:10] == 255).all() and (out[10:20] == 0).all() and (out[20:] == 255).all()
    mask = square_pad(np.full((30, 10), 255, np.uint8), 0)
    assert mask.shape == (30, 30) and mask[:, :10].max() == 0 and mask[:, 10:20].min() == 255


def test_resize_square_smooth_for_photos_nearest_for_masks():
    mask = np.zeros((100, 100), np.uint8)
    mask[::2] = 255
    nearest = resize_square(mask, 33, nearest=True)
    assert nearest.shape == (33, 33) and set(np.unique(nearest)) <= {0, 255}
    photo = resize_square(np.dstack([mask] * 3), 50)
    assert photo.shape == (50, 50, 3) and 100 < photo.mean() < 155  # area-averaged stripes
    assert resize_square(np.zeros((10, 10, 3), np.uint8), 40).shape == (40, 40, 3)
    with pytest.raises(ValueError, match="square"):
        resize_square(np.zeros((10, 20, 3), np.uint8), 8)


def test_fit_within_only_shrinks():
    img = np.zeros((400, 200, 3), np.uint8)
    assert fit_within(img, 100).shape == (100, 50, 3)
    assert fit_within(img, 1000) is img
