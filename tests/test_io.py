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
    DecodeMemory, ImageRejected, decode_rgb, decode_upload, encode_png, fit_within, load_rgb, resize_square,
    save_png, square_pad,
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


# -- uploads: PNG, JPEG and WebP only, decoded within a memory budget tied to the served size -----

def upload(data: bytes, max_side: int = 512, **kwargs) -> np.ndarray:
    return decode_upload(data, max_side=max_side, max_pixels=kwargs.pop("max_pixels", 16_000_000),
                         min_side=kwargs.pop("min_side", 16))


def upload_reason(data: bytes, **kwargs) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        upload(data, **kwargs)
    return info.value


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_as_exif_transpose_shows_it(orientation):
    from PIL import ImageOps

    stored = Image.fromarray(np.random.default_rng(orientation).integers(0, 256, (24, 40, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(stored, "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(decode_rgb(data, min_side=1), expected)


def test_alpha_is_composited_in_uint8_exactly_as_in_floats():
    rgba = np.random.default_rng(5).integers(0, 256, (64, 48, 4), dtype=np.uint8)
    alpha = rgba[..., 3:4] / 255.0
    expected = np.clip(np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(decode_rgb(encoded(Image.fromarray(rgba, "RGBA"))), expected)


def test_uploads_accept_png_jpeg_webp_and_name_what_else_they_refuse():
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    for fmt in ("PNG", "JPEG", "WEBP"):
        out = upload(encoded(img, fmt))
        assert out.shape == (48, 64, 3) and out[..., 0].mean() > 180, fmt
    for fmt, name in (("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")):
        exc = upload_reason(encoded(img, fmt))
        assert exc.reason == "unsupported format" and name in str(exc), fmt
        assert decode_rgb(encoded(img, fmt)).shape == (48, 64, 3)  # the pipeline still reads shop photos in them


def test_upload_is_reduced_to_the_served_side_like_an_area_resize():
    import cv2

    yy, xx = np.mgrid[0:1500, 0:2000]
    rgb = np.dstack([(xx * 255 // 2000), (yy * 255 // 1500), ((xx + yy) % 256)]).astype(np.uint8)
    for fmt in ("PNG", "JPEG"):
        data = encoded(Image.fromarray(rgb), fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        out = upload(data, max_side=512)
        assert out.shape == (384, 512, 3), fmt
        reference = cv2.resize(decode_rgb(data), (512, 384), interpolation=cv2.INTER_AREA)
        assert np.abs(out.astype(int) - reference).mean() < 2.5, fmt


def test_a_png_no_reduction_brings_under_the_budget_is_refused_from_its_header():
    # The 69 KB, 4000 x 4000 one-colour RGBA PNG that once cost a gigabyte to decode.
    data = encoded(Image.new("RGBA", (4000, 4000), (200, 30, 30, 128)))
    exc = upload_reason(data, max_side=512)
    assert exc.reason == "too large" and "4000x4000 PNG" in str(exc) and "max 16 MB" in str(exc)
    # Header only (junk pixel data): "too large", not "corrupt", so nothing was decoded.
    assert upload_reason(png_header_only(2500, 2500), max_side=512).reason == "too large"
    assert upload(encoded(Image.new("RGBA", (2048, 2048), (200, 30, 30, 128)))).shape == (512, 512, 3)
    assert upload(encoded(Image.new("P", (4000, 4000), 3))).shape == (512, 512, 3)  # 1 byte a pixel


def test_a_big_jpeg_decodes_reduced_but_a_progressive_one_pays_full_size():
    big = Image.new("RGB", (4000, 3000), (30, 60, 200))
    # 48 MB at full size: under the 16 MB budget only because it is decoded at 1/4 scale.
    assert upload(encoded(big, "JPEG")).shape == (384, 512, 3)
    # libjpeg keeps every coefficient of a progressive JPEG (2 bytes a sample, full size).
    exc = upload_reason(encoded(big, "JPEG", progressive=True))
    assert exc.reason == "too large" and "4000x3000 JPEG" in str(exc)
    assert upload(encoded(big.resize((2000, 1500)), "JPEG", progressive=True)).shape == (384, 512, 3)


def test_png_text_chunks_are_dropped_before_pillow_inflates_them():
    """Compressed text chunks inflate up to 64 MB per image inside Pillow; decoding needs none."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = encoded(Image.new("RGB", (64, 64), (10, 200, 10)))
    text = chunk(b"zTXt", b"note\x00\x00" + zlib.compress(b"a" * 1_000_000, 9))
    bomb = png[:33] + text * 80 + png[33:]  # after IHDR: 80 MB of text from 80 KB of file
    assert len(bomb) < 200_000
    assert tuple(decode_rgb(bomb)[0, 0]) == (10, 200, 10)
    assert tuple(upload(bomb)[0, 0]) == (10, 200, 10)
    truncated = png[:33] + text[:100]
    assert reason_of(truncated).reason == "corrupt or truncated image"


def test_decode_memory_lets_decodes_wait_for_their_share():
    import threading
    import time

    gate = DecodeMemory(100)
    entered, release = threading.Event(), threading.Event()

    def second_decode() -> None:
        with gate.hold(50):
            entered.set()
            release.wait(60)

    with gate.hold(80):
        waiter = threading.Thread(target=second_decode)
        waiter.start()
        time.sleep(0.2)  # a negative check: however slow the thread, it cannot have entered
        assert not entered.is_set() and gate.used == 80
    assert entered.wait(60) and gate.used == 50
    release.set()
    waiter.join(60)
    assert gate.used == 0
    with gate.hold(10_000):  # more than the capacity waits for all of it, not forever
        assert gate.used == 100
