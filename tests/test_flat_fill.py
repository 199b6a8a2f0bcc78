"""The flat fill of the hints, and the outline closing and framing that come with it."""
from __future__ import annotations

import cv2
import numpy as np

from sketch2fashion.imaging.flat_fill import DEFAULT, GUESSED, NEUTRAL, SURE, flat_fill, prepare_fill
from sketch2fashion.imaging.framing import content_box, frame_content
from sketch2fashion.imaging.hints import Hints
from sketch2fashion.imaging.outline import close_outline, doodle_gaps

RED, BLUE = (200, 30, 40), (30, 60, 200)


def page(size: int = 128) -> np.ndarray:
    return np.full((size, size), 255, np.uint8)


def dots(shape: tuple[int, int], *spots: tuple[int, int, tuple[int, int, int]]) -> Hints:
    hints = Hints.empty(shape)
    for x, y, colour in spots:
        cv2.circle(hints.rgb, (x, y), 3, colour, -1)
        cv2.circle(hints.mask, (x, y), 3, 1, -1)
    return hints


def t_shirt(edges: np.ndarray, *, open_hem: bool = False, seams: bool = False) -> None:
    """A t-shirt outline: body, two short sleeves; optionally the hem left out."""
    outline = [(44, 110), (44, 50), (24, 62), (14, 44), (44, 20), (84, 20), (114, 44), (104, 62), (84, 50),
               (84, 110)]
    cv2.polylines(edges, [np.array(outline)], not open_hem, 0, 2)
    if seams:
        cv2.line(edges, (44, 20), (44, 50), 0, 2)
        cv2.line(edges, (84, 20), (84, 50), 0, 2)


def test_a_hint_fills_its_region_up_to_the_lines_and_never_the_page() -> None:
    edges = page()
    t_shirt(edges)
    fill, leaks = flat_fill(edges, dots(edges.shape, (64, 80, RED)))
    assert not leaks
    assert (fill.weight[30:105, 50:80] == SURE).all() and (fill.rgb[30:105, 50:80] == RED).all()
    assert (fill.weight[54, 20] == SURE) and (fill.rgb[54, 20] == RED).all()  # the sleeve, same region
    assert (fill.weight[:10] == 0).all() and (fill.weight[120:] == 0).all()  # the page outside stays white
    assert (fill.weight[110, 44:84] > 0).all()  # the outline itself takes the garment's colour


def test_two_colours_in_one_region_split_it_and_unhinted_regions_are_guessed() -> None:
    edges = page()
    t_shirt(edges, seams=True)  # the sleeves are regions of their own now
    fill, _ = flat_fill(edges, dots(edges.shape, (55, 40, RED), (75, 100, BLUE)))
    assert (fill.rgb[35, 50] == RED).all() and (fill.rgb[105, 80] == BLUE).all()
    assert fill.weight[54, 20] == GUESSED  # the sleeve: no hint, the nearest hint's colour
    assert (fill.rgb[54, 20] == RED).all()


def test_an_open_hem_is_closed_and_a_wide_opening_is_filled_only_within_the_silhouette() -> None:
    edges = page()
    t_shirt(edges, open_hem=True)
    closed = close_outline(edges)
    assert len(closed.open_ends) == 0 and (closed.edges[110, 50:80] == 0).any()  # the hem drawn shut
    prepared = prepare_fill(edges, dots(edges.shape, (64, 80, RED)))
    assert not prepared.leaks and prepared.fill.weight[80, 64] == SURE
    wide = page()
    cv2.polylines(wide, [np.array([(30, 120), (30, 20), (100, 20), (100, 120)])], False, 0, 2)  # no hem at all
    cv2.line(wide, (100, 120), (106, 126), 0, 2)  # and a stroke running on, so the sides are not "ends"
    fill, leaks = flat_fill(close_outline(wide, open_gap=0.1).edges, dots(wide.shape, (64, 70, RED)))
    assert leaks and fill.weight[70, 64] == GUESSED
    assert (fill.weight[:, :20] == 0).all() and (fill.weight[:10] == 0).all()  # not the whole page


def test_openings_are_told_from_short_dashes_and_far_apart_ends() -> None:
    edges = page()
    cv2.polylines(edges, [np.array([(20, 120), (20, 20), (55, 20), (55, 120)])], False, 0, 2)  # a leg, hem open
    joins, open_ends = doodle_gaps(edges)
    assert len(joins) == 1 and len(open_ends) == 0
    (x1, y1), (x2, y2) = joins[0]
    assert {x1 < 30, x2 < 30} == {True, False} and min(y1, y2) > 110
    dash = page()
    cv2.line(dash, (40, 60), (52, 60), 0, 2)
    joins, open_ends = doodle_gaps(dash)
    assert joins == [] and len(open_ends) == 2  # the two ends of a dash are joined along it


def test_a_drawing_without_hints_gets_a_neutral_garment() -> None:
    edges = page()
    t_shirt(edges)
    fill, leaks = flat_fill(edges, Hints.empty(edges.shape))
    assert not leaks and fill.weight[80, 64] == DEFAULT and (fill.rgb[80, 64] == NEUTRAL).all()
    assert (fill.weight[:10] == 0).all()
    empty, _ = flat_fill(page(), Hints.empty((128, 128)))
    assert not empty.weight.any()


def test_framing_crops_to_the_content_with_a_margin_and_keeps_the_aspect() -> None:
    image = np.full((200, 300, 3), 255, np.uint8)
    image[150:170, 20:60] = 0  # a small drawing in a corner
    assert content_box(image) == (20, 150, 60, 170)
    framed = frame_content(image)
    assert framed.shape[0] == framed.shape[1] == 40 + 2 * round(0.08 * 40)
    dark = np.argwhere(framed.min(axis=2) < 128)
    assert np.ptp(dark[:, 1]) + 1 == 40 and np.ptp(dark[:, 0]) + 1 == 20  # not stretched
    assert frame_content(np.full((10, 20, 3), 255, np.uint8)).shape == (20, 20, 3)  # empty page: padded
