"""Outline closure (where colour would bleed) and gap finding/closing on drawn outlines."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.measure import label
from skimage.morphology import skeletonize

from sketch2fashion.imaging.outline import (
    close_gaps,
    find_gaps,
    outline_closure,
    skeleton,
    stroke_ends,
    stroke_width,
)

SQUARE = np.array([(60, 50), (200, 50), (200, 210), (60, 210)], np.int32)


def drawn_outline(gap: int = 0, width: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle drawn black on white (and its filled mask), with a gap cut in its right side."""
    edges = np.full((256, 256), 255, np.uint8)
    mask = np.zeros_like(edges)
    cv2.fillPoly(mask, [SQUARE], 255)
    cv2.polylines(edges, [SQUARE], True, 0, width)
    if gap:
        edges[120:120 + gap, 190:210] = 255
    return edges, mask


def closure_by_skimage(edges: np.ndarray, mask: np.ndarray, margin: int = 2) -> float:
    """Independent oracle: 4-connected paper regions touching the border, via scikit-image."""
    labels = label(edges >= 128, connectivity=1)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    leaked = np.isin(labels, border[border > 0])
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    inside = cv2.erode(mask, kernel) > 0
    return 1.0 - leaked[inside].mean()


def test_closed_outline_scores_one_and_has_no_gaps() -> None:
    edges, mask = drawn_outline()
    assert outline_closure(edges, mask) == 1.0
    assert find_gaps(edges, 10) == []
    assert np.array_equal(close_gaps(edges, 10), edges)


def test_a_six_pixel_gap_leaks_and_close_gaps_repairs_it() -> None:
    edges, mask = drawn_outline(gap=6)
    assert outline_closure(edges, mask) < 0.1
    gaps = find_gaps(edges, max_gap=10)
    assert len(gaps) == 1
    (x1, y1), (x2, y2) = gaps[0]
    assert abs(x1 - 200) <= 2 and abs(x2 - 200) <= 2 and {y1 < 123, y2 > 123} == {True}
    repaired = close_gaps(edges, max_gap=10)
    assert outline_closure(repaired, mask) > 0.95
    # Only the gap was inked: nothing changed away from it.
    changed = np.argwhere(repaired != edges)
    assert changed[:, 0].min() >= 110 and changed[:, 0].max() <= 135


def test_gaps_wider_than_max_gap_are_left_alone() -> None:
    edges, mask = drawn_outline(gap=14)
    assert find_gaps(edges, max_gap=10) == []
    assert outline_closure(close_gaps(edges, 10), mask) < 0.1
    assert outline_closure(close_gaps(edges, 20), mask) > 0.95


def test_ends_joined_a_short_way_round_are_not_gaps() -> None:
    edges = np.full((128, 128), 255, np.uint8)
    cv2.line(edges, (40, 60), (46, 60), 0, 2)          # a short dash: its two ends are close
    cv2.polylines(edges, [np.array([(80, 40), (90, 40), (90, 46), (80, 46)])], False, 0, 2)  # a "C"
    assert find_gaps(edges, max_gap=10) == []


def test_a_line_stopping_short_of_another_is_a_t_gap() -> None:
    edges = np.full((128, 128), 255, np.uint8)
    cv2.line(edges, (20, 64), (108, 64), 0, 2)
    cv2.line(edges, (64, 20), (64, 57), 0, 2)          # stops 5 px above the horizontal line
    gaps = find_gaps(edges, max_gap=8)
    assert len(gaps) == 1
    assert find_gaps(edges, max_gap=8, to_strokes=False) == []
    joined = close_gaps(edges, max_gap=8)
    assert label(joined < 128, connectivity=2).max() == 1


def test_closure_matches_an_independent_flood_fill() -> None:
    rng = np.random.default_rng(7)
    for _ in range(5):
        edges, mask = drawn_outline(gap=int(rng.integers(0, 12)), width=int(rng.integers(1, 4)))
        for _ in range(30):  # random scribbles, some fencing parts of the interior off
            a, b = rng.integers(40, 220, 2), rng.integers(40, 220, 2)
            cv2.line(edges, tuple(int(v) for v in a), tuple(int(v) for v in b), 0, 1)
        assert outline_closure(edges, mask) == pytest.approx(closure_by_skimage(edges, mask))


def test_skeleton_is_one_pixel_wide_and_finds_stroke_ends() -> None:
    ink = np.zeros((64, 64), bool)
    ink[20:26, 10:50] = True                            # a 6-px-thick straight stroke
    skel = skeleton(ink)
    assert skel.any() and not (skel & ~ink).any()
    blocks = skel[:-1, :-1] & skel[1:, :-1] & skel[:-1, 1:] & skel[1:, 1:]
    assert not blocks.any(), "no 2x2 blocks: one pixel wide"
    assert abs(int(skel.sum()) - int(skeletonize(ink).sum())) <= 6
    ends = stroke_ends(ink)
    xs = sorted(ends[:, 0].tolist())
    assert len(xs) == 2 and xs[0] < 16 and xs[1] > 44
    assert stroke_width(ink) in (5, 6, 7)


def test_closure_edge_cases() -> None:
    edges, mask = drawn_outline()
    assert outline_closure(edges, np.zeros_like(mask)) == 1.0
    with pytest.raises(ValueError):
        outline_closure(edges, mask[:10])
    assert find_gaps(np.full((32, 32), 255, np.uint8), 10) == []
