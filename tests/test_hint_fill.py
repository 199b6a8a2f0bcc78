"""The generator's flat colour fill: stays inside ink lines, bounded leak, exported unchanged."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from sketch2fashion.models.hint_fill import HintFill
from sketch2fashion.models.inputs import to_generator_batch
from sketch2fashion.models.networks import build_generator

RED, BLUE = (220, 30, 30), (30, 30, 220)


def sketch(gap: int = 0):
    """A box split in two by a vertical line, a red dot left and a blue dot right; `gap` px opening in the box."""
    edges = np.full((128, 128), 255, np.uint8)
    cv2.rectangle(edges, (20, 20), (108, 108), 0, 2)
    cv2.line(edges, (64, 20), (64, 108), 0, 2)
    if gap:
        edges[60:60 + gap, 18:23] = 255  # opening in the left wall
    rgb = np.zeros((128, 128, 3), np.uint8)
    mask = np.zeros((128, 128), np.uint8)
    for (y, x), colour in (((40, 40), RED), ((80, 90), BLUE)):
        rgb[y:y + 3, x:x + 3] = colour
        mask[y:y + 3, x:x + 3] = 1
    return to_generator_batch(edges[None], rgb[None], mask[None])


def as_u8(fill: torch.Tensor, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(round((float(v) + 1) * 127.5)) for v in fill[0, :3, y, x])


def test_each_colour_fills_its_own_region_and_stops_at_lines():
    fill = HintFill(steps=64, scale=4)(sketch())
    assert fill[0, 3, 90, 30] == 1 and as_u8(fill, 90, 30) == RED      # far corner of the left half
    assert fill[0, 3, 30, 100] == 1 and as_u8(fill, 30, 100) == BLUE   # far corner of the right half
    assert fill[0, 3, 5, 5] == 0 and fill[0, 3, 120, 64] == 0          # outside the box: untouched


def test_no_hints_no_fill_and_a_gap_leaks_only_steps_cells():
    x = sketch()
    x[:, 1:5] = 0
    assert HintFill()(x).abs().sum() == 0
    leaky = HintFill(steps=12, scale=4)(sketch(gap=12))
    outside = leaky[0, 3, :, :20]  # left of the box
    assert outside.sum() > 0                                    # the gap does leak...
    assert leaky[0, 3, 5, 5] == 0 and leaky[0, 3, 124, 2] == 0  # ...but only `steps` cells far


def test_diagonal_walls_do_not_leak():
    edges = np.full((64, 64), 255, np.uint8)
    for i in range(64):
        edges[i, max(0, i - 1):i + 1] = 0  # a 1-2 px diagonal line
    rgb = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    rgb[50, 5] = RED
    mask[50, 5] = 1
    fill = HintFill(steps=64, scale=1)(to_generator_batch(edges[None], rgb[None], mask[None]))
    assert fill[0, 3, 60, 2] == 1 and fill[0, 3, 5, 50] == 0


def test_generator_with_fill_keeps_its_interface_and_traces_exactly():
    gen = build_generator({"ngf": 8, "depth": "auto", "norm": "instance", "hint_fill": {"steps": 8, "scale": 4}}, 128).eval()
    x = sketch()
    assert gen.in_channels == 5 and gen(x).shape == (1, 3, 128, 128)
    traced = torch.jit.trace(gen, x)
    assert torch.allclose(traced(x), gen(x), atol=1e-5)
    with pytest.raises(ValueError, match="unknown key"):
        build_generator({"depth": "auto", "hint_fill": {"stepz": 3}}, 128)
