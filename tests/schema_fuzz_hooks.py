"""Schemathesis hooks for the schema fuzz (tests/test_api_contract.py): drawings for the image fields.

Loaded by `st run` through SCHEMATHESIS_HOOKS. Without them an image field gets Schemathesis'
one fixed 1x1 PNG, which only ever reaches the "too small" check; these are drawings like a
shopper's (ink lines and colour dots on paper) of random size, mode and format, some below
`serving.limits.min_side` and some cut short, so the fuzz also reaches the colorizer and the
catalog search behind the checks.
"""
from __future__ import annotations

import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image, ImageDraw

MODES = {"PNG": ("RGB", "RGBA", "L", "P"), "JPEG": ("RGB", "L")}


@st.composite
def drawings(draw, image_format: str) -> bytes:
    width, height = draw(st.integers(4, 200)), draw(st.integers(4, 200))
    image = Image.new("RGB", (width, height), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    for _ in range(draw(st.integers(0, 4))):
        box = sorted(draw(st.lists(st.integers(0, width - 1), min_size=2, max_size=2)))
        rows = sorted(draw(st.lists(st.integers(0, height - 1), min_size=2, max_size=2)))
        pen.rectangle((box[0], rows[0], box[1], rows[1]), outline=(0, 0, 0), width=draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(0, 6))):
        x, y = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
        colour = tuple(draw(st.integers(0, 255)) for _ in range(3))
        pen.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    mode = draw(st.sampled_from(MODES[image_format]))
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, format=image_format)
    data = buffer.getvalue()
    if draw(st.integers(0, 9)) == 0:  # one in ten cut short, as an interrupted upload
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data


schemathesis.openapi.media_type("image/png", drawings("PNG"))
schemathesis.openapi.media_type("image/jpeg", drawings("JPEG"))
