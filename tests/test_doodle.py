"""Doodle synthesis: quick outlines that look drawn, with a target photo that matches them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from sketch2fashion.colorizer.doodle import (
    EVAL_STYLE,
    TRAIN_STYLE,
    DoodleStyle,
    doodle_from_params,
    synthesise_doodle,
)
from sketch2fashion.demo.feed import sample_spec
from sketch2fashion.demo.render import render_garment
from sketch2fashion.imaging.edges import sketch_edges
from sketch2fashion.imaging.outline import ink_extent, ink_of, skeleton

SIZE = 128


def garment(category: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    photo, mask = render_garment(sample_spec(category, np.random.default_rng(seed)), SIZE)
    return photo, mask, sketch_edges(photo, mask)


@pytest.fixture(scope="module")
def garments() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [garment(c, s) for s in range(3) for c in ("top", "pants", "skirt", "hat")]


def _interior_ink_share(edges: np.ndarray, mask: np.ndarray) -> float:
    inner = cv2.erode((mask > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    ink = ink_of(edges)
    return float((ink & inner).sum()) / max(1, int(ink.sum()))


def test_a_doodle_is_thin_outline_ink_with_far_less_interior_detail_than_the_edge_map(garments) -> None:
    doodle_shares, edge_shares = [], []
    for k, (photo, mask, edges) in enumerate(garments):
        doodle = synthesise_doodle(photo, mask, edges, np.random.default_rng(k), TRAIN_STYLE)
        ink = ink_of(doodle.edges)
        assert ink.any() and set(np.unique(doodle.edges)) <= {0, 255}
        assert ink.sum() < 3.5 * skeleton(ink).sum()  # 1-3 px pens (at 256 px), scaled down here
        doodle_shares.append(_interior_ink_share(doodle.edges, doodle.mask))
        edge_shares.append(_interior_ink_share(edges, mask))
    assert np.mean(doodle_shares) < 0.65 * np.mean(edge_shares)  # most seams, folds and texture dropped


def test_the_target_is_the_photo_recut_to_the_drawn_outline(garments) -> None:
    for k, (photo, mask, edges) in enumerate(garments):
        doodle = synthesise_doodle(photo, mask, edges, np.random.default_rng(k), TRAIN_STYLE)
        inside = doodle.mask > 0
        assert inside.any()
        assert (doodle.photo[~inside] == 255).all()  # white exactly where the drawing says paper
        white = (doodle.photo[inside] == 255).all(axis=1).mean()
        assert white < (photo[mask > 0] == 255).all(axis=1).mean() + 0.05  # garment colours inside, not backdrop
        ys, xs = np.nonzero(ink_of(doodle.edges))
        yi, xi = np.nonzero(inside)
        # the drawn lines run round the garment the target shows
        assert abs(xs.min() - xi.min()) <= 6 and abs(ys.max() - yi.max()) <= 6


def test_doodles_vary_in_size_position_and_openness_and_repeat_from_a_seed(garments) -> None:
    photo, mask, edges = garments[0]
    extents, centres = [], []
    for k in range(12):
        doodle = synthesise_doodle(photo, mask, edges, np.random.default_rng(k), TRAIN_STYLE)
        ink = ink_of(doodle.edges)
        extents.append(ink_extent(ink) / SIZE)
        ys, xs = np.nonzero(ink)
        centres.append(((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2))
    assert min(extents) < 0.6 and max(extents) > 0.8  # 30-100% of the canvas
    assert np.ptp(np.array(centres), axis=0).max() > 10  # not always centred
    again = synthesise_doodle(photo, mask, edges, np.random.default_rng(3), TRAIN_STYLE)
    assert np.array_equal(again.edges, synthesise_doodle(photo, mask, edges, np.random.default_rng(3)).edges)


def test_the_evaluation_style_is_its_own_family_and_params_are_checked() -> None:
    assert EVAL_STYLE != TRAIN_STYLE and EVAL_STYLE.pen[0] > TRAIN_STYLE.pen[0]
    share, style = doodle_from_params({"share": 0.4, "p_gap": 0.9, "pen": [2, 2]})
    assert share == 0.4 and style.p_gap == 0.9 and style.pen == (2, 2) and style.scale == TRAIN_STYLE.scale
    assert doodle_from_params(None) == (0.0, TRAIN_STYLE)
    with pytest.raises(ValueError, match="p_gapp"):
        doodle_from_params({"p_gapp": 0.5})
    with pytest.raises(ValueError, match="share"):
        doodle_from_params({"share": 1.5})
    with pytest.raises(ValueError, match="p_gap"):
        DoodleStyle(p_gap=2.0)


def test_an_empty_mask_gives_an_empty_page() -> None:
    doodle = synthesise_doodle(np.full((32, 32, 3), 255, np.uint8), np.zeros((32, 32), np.uint8), None,
                               np.random.default_rng(0))
    assert (doodle.edges == 255).all() and not doodle.mask.any()
