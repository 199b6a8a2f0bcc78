"""Simulated colour hints: on the garment only, true to the photo, varied, seedable; and the
drawing round trip (compose -> split) and nearest-neighbour resizing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.measure import label

from sketch2fashion.imaging.hints import (
    INK_THRESHOLD,
    SATURATION_THRESHOLD,
    Hints,
    colour_regions,
    compose_sketch,
    draw_hint_count,
    resize_hints,
    simulate_hints,
    split_sketch,
)

RED, BLUE = (205, 30, 40), (30, 60, 170)


def striped_garment(size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red/blue striped t-shirt-ish polygon on a white (and a pale yellow) background."""
    rng = np.random.default_rng(seed)
    s = size / 256
    mask = np.zeros((size, size), np.uint8)
    body = np.array([(70, 40), (186, 40), (230, 90), (190, 115), (186, 225), (70, 225),
                     (66, 115), (26, 90)], np.float64) * s
    cv2.fillPoly(mask, [np.round(body).astype(np.int32)], 255)
    yy = np.mgrid[:size, :size][0]
    stripes = np.where(((yy // int(20 * s)) % 2 == 0)[..., None], RED, BLUE).astype(np.float64)
    photo = np.full((size, size, 3), (255, 250, 200), np.float64)  # a colour hints must never get
    photo[mask > 0] = stripes[mask > 0] + rng.normal(0, 3, (int((mask > 0).sum()), 3))
    return np.clip(photo, 0, 255).astype(np.uint8), mask


def test_every_hint_pixel_lies_on_the_garment() -> None:
    photo, mask = striped_garment()
    thin = np.zeros_like(mask)
    cv2.line(thin, (20, 200), (230, 30), 255, 5)  # a strap-like garment only 5 px wide
    for seed in range(25):
        for garment in (mask, thin):
            hints = simulate_hints(photo, garment, np.random.default_rng(seed), n=24)
            assert hints.mask.any()
            assert not (hints.hinted & (garment == 0)).any()
            assert not hints.rgb[~hints.hinted].any(), "rgb is 0 where there is no hint"
        many = simulate_hints(photo, mask, seed, n_range=(0, 24))
        assert not (many.hinted & (mask == 0)).any()


def test_hint_colours_are_the_photo_colours_under_them() -> None:
    photo, mask = striped_garment()
    for seed in range(10):
        hints = simulate_hints(photo, mask, seed, n=12)
        diff = np.abs(hints.rgb.astype(int) - photo.astype(int)).max(axis=2)[hints.hinted]
        assert np.median(diff) <= 8 and (diff <= 20).mean() > 0.97
        colours = hints.rgb[hints.hinted].astype(int)
        to_red = np.abs(colours - RED).max(axis=1)
        to_blue = np.abs(colours - BLUE).max(axis=1)
        assert (np.minimum(to_red, to_blue) <= 10).all(), "each hint is one stripe's colour"


def test_every_sizable_colour_region_tends_to_get_a_hint() -> None:
    photo, mask = striped_garment()
    both = 0
    for seed in range(20):
        colours = simulate_hints(photo, mask, seed, n=2).rgb.reshape(-1, 3).astype(int)
        has_red = (np.abs(colours - RED).max(axis=1) <= 12).any()
        has_blue = (np.abs(colours - BLUE).max(axis=1) <= 12).any()
        both += has_red and has_blue
    assert both >= 18
    regions = colour_regions(photo, mask, np.random.default_rng(0))
    assert (regions[mask == 0] == -1).all() and len(np.unique(regions[mask > 0])) == 2


def test_zero_hints_give_an_empty_hint_image() -> None:
    photo, mask = striped_garment()
    for hints in (simulate_hints(photo, mask, 1, n=0),
                  simulate_hints(photo, mask, 1, n_range=(0, 0)),
                  simulate_hints(photo, np.zeros_like(mask), 1, n=5)):
        assert hints.mask.shape == mask.shape and hints.rgb.shape == photo.shape
        assert not hints.mask.any() and not hints.rgb.any()


def test_hints_are_seedable() -> None:
    photo, mask = striped_garment()
    a = simulate_hints(photo, mask, np.random.default_rng(42))
    b = simulate_hints(photo, mask, np.random.default_rng(42))
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.mask, b.mask)
    c = simulate_hints(photo, mask, np.random.default_rng(43), n=6)
    d = simulate_hints(photo, mask, np.random.default_rng(44), n=6)
    assert not np.array_equal(c.mask, d.mask)


def test_hint_counts_vary_from_none_to_many() -> None:
    rng = np.random.default_rng(0)
    counts = np.array([draw_hint_count(rng, (0, 24)) for _ in range(3000)])
    assert counts.min() == 0 and counts.max() == 24
    assert 0.1 < (counts == 0).mean() < 0.35, "sketches without hints are common"
    assert np.median(counts) < 12, "few hints are more common than many"
    assert {draw_hint_count(rng, (3, 3)) for _ in range(10)} == {3}
    photo, mask = striped_garment()
    blobs = [label(simulate_hints(photo, mask, seed, stroke_fraction=0.0).mask).max()
             for seed in range(30)]
    assert min(blobs) == 0 and max(blobs) >= 10


def test_hint_size_scales_with_the_image() -> None:
    small_photo, small_mask = striped_garment(256)
    big_photo, big_mask = striped_garment(512)
    small = [simulate_hints(small_photo, small_mask, s, n=1, stroke_fraction=0.0).mask.sum()
             for s in range(10)]
    big = [simulate_hints(big_photo, big_mask, s, n=1, stroke_fraction=0.0).mask.sum()
           for s in range(10)]
    assert 2.5 < np.mean(big) / np.mean(small) < 6  # about 4x the area for 2x the side
    assert max(small) <= np.pi * 4.5 ** 2  # dot_radius (2, 4) at 256 px


def test_strokes_are_elongated_and_stay_in_their_colour_region() -> None:
    photo, mask = striped_garment()
    hints = simulate_hints(photo, mask, 3, n=8, stroke_fraction=1.0)
    labels = label(hints.mask, connectivity=2)
    assert labels.max() >= 1
    for i in range(1, labels.max() + 1):
        ys, xs = np.nonzero(labels == i)
        colours = np.unique(hints.rgb[ys, xs], axis=0)
        assert len(colours) <= 2  # one stroke, one colour (two if two strokes touch)


def test_compose_then_split_recovers_edges_and_hints() -> None:
    photo, mask = striped_garment()
    edges = np.full(mask.shape, 255, np.uint8)
    cv2.polylines(edges, [np.array([(70, 40), (186, 40), (186, 225), (70, 225)])], True, 0, 2)
    cv2.line(edges, (100, 60), (160, 200), 0, 3)
    hints = simulate_hints(photo, mask, 5, n=20)
    drawing = compose_sketch(edges, hints)
    assert drawing.shape == photo.shape and drawing.dtype == np.uint8
    got_edges, got_hints = split_sketch(drawing)
    assert np.array_equal(got_hints.mask, hints.mask)
    assert np.array_equal(got_hints.rgb, hints.rgb)
    # Lines under a hint are hidden by it; everywhere else the edges come back exactly.
    assert np.array_equal(got_edges, np.where(hints.hinted, 255, edges))


def test_split_reads_grey_pencil_as_ink_and_documents_achromatic_hints() -> None:
    drawing = np.full((40, 40, 3), 255, np.uint8)
    drawing[5, :] = (90, 90, 95)       # grey pencil line: ink
    drawing[10, :] = (20, 10, 12)      # near-black with a colour cast: still ink
    drawing[20:24, 20:24] = (250, 120, 160)   # pink hint
    drawing[30:34, 5:9] = (255, 255, 255)     # a white hint on white paper
    edges, hints = split_sketch(drawing)
    assert (edges[5] == 0).all() and (edges[10] == 0).all()
    assert hints.mask[20:24, 20:24].all() and (hints.rgb[21, 21] == (250, 120, 160)).all()
    # Known limit of a single RGB upload: white paint on white paper is paper, which is why the
    # UI sends its hint layer separately.
    assert not hints.mask[30:34, 5:9].any() and (edges[30:34, 5:9] == 255).all()


def split_sketch_reference(rgb: np.ndarray, *, ink_threshold: int = INK_THRESHOLD,
                           saturation_threshold: int = SATURATION_THRESHOLD
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plain numpy split_sketch (too slow per request) the OpenCV one must match bit for bit."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    chroma = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2).astype(np.int16)
    hinted = chroma >= saturation_threshold
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    ink = ~hinted & (grey < ink_threshold)
    edges = np.where(ink, 0, 255).astype(np.uint8)
    return edges, np.where(hinted[..., None], rgb, 0).astype(np.uint8), hinted.astype(np.uint8)


def assert_splits_like_reference(rgb: np.ndarray, **thresholds: int) -> None:
    edges, hints = split_sketch(rgb, **thresholds)
    for got, want in zip((edges, hints.rgb, hints.mask), split_sketch_reference(rgb, **thresholds)):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)


def test_split_matches_reference_on_every_colour() -> None:
    # Each pixel is split on its own colour, so all 2**24 colours cover every image's content.
    gb = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), axis=2).astype(np.uint8)
    for red in range(256):
        assert_splits_like_reference(np.dstack([np.full((256, 256), red, np.uint8), gb]))


@pytest.mark.parametrize("ink, saturation", [(INK_THRESHOLD, SATURATION_THRESHOLD), (0, 0), (1, 1),
                                             (255, 255), (256, 256), (-3, 1000), (1000, -3)])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (3, 4), (64, 48), (256, 256)])
def test_split_matches_reference_on_random_images(shape: tuple[int, int], ink: int, saturation: int) -> None:
    rgb = np.random.default_rng(shape[0] * 1000 + shape[1]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert_splits_like_reference(rgb, ink_threshold=ink, saturation_threshold=saturation)


def test_split_matches_reference_on_grey_ink_and_at_the_thresholds() -> None:
    t, k = SATURATION_THRESHOLD, INK_THRESHOLD
    greys = [(v, v, v) for v in range(256)]  # pure grey: chroma 0, grey level v
    chromas = [(b, b + c, b) for c in (t - 1, t, t + 1) for b in (0, 60, 255 - c)]
    chromas += [(b + c, b, b + c // 2) for c in (t - 1, t, t + 1) for b in (0, 100)]
    near_ink = [(v, v, v) for v in (k - 1, k, k + 1)] + [(v + 10, v, v + 5) for v in (k - 8, k - 7, k - 6)]
    pixels = np.array(greys + chromas + near_ink, np.uint8)[None]
    edges, hints = split_sketch(pixels)
    chroma = pixels.max(axis=2).astype(int) - pixels.min(axis=2)
    assert np.array_equal(hints.mask[0] == 1, chroma[0] >= t)  # t - 1 / t / t + 1 all present
    assert {k - 1, k, k + 1} <= set(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)[0].tolist())
    assert (edges[0, :k] == 0).all() and (edges[0, k:256] == 255).all()
    assert_splits_like_reference(pixels)
    assert_splits_like_reference(pixels, ink_threshold=k + 1, saturation_threshold=t + 1)
    assert_splits_like_reference(pixels, ink_threshold=k - 1, saturation_threshold=t - 1)


def test_split_matches_reference_on_views_and_other_dtypes() -> None:
    rgb = np.random.default_rng(7).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    rgb[10:20] = (30, 30, 30)
    rgb[20:25, :, 0] = 250
    for view in (rgb[..., ::-1], rgb[::2, 1::3], rgb.transpose(1, 0, 2), np.asfortranarray(rgb),
                 rgb[::-1, ::-1], rgb.astype(np.int64)):
        assert not view.flags.c_contiguous or view.dtype != np.uint8
        assert_splits_like_reference(view)


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 1), (8, 8, 4), (2, 8, 8, 3)])
def test_split_refuses_non_rgb_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="RGB"):
        split_sketch(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("shape", ["square", "disk"])
def test_resize_keeps_a_three_pixel_dot_when_halving(offset: int, shape: str) -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    cy = cx = 31 + offset
    if shape == "square":
        mask[cy - 1:cy + 2, cx - 1:cx + 2] = 1
    else:
        cv2.circle(mask, (cx, cy), 1, 1, -1)  # a plus: 3 px across
    rgb[mask > 0] = (10, 200, 30)
    small = resize_hints(Hints(rgb, mask), 32)
    assert small.mask.shape == (32, 32) and small.rgb.shape == (32, 32, 3)
    assert small.mask.sum() >= 1
    assert set(np.unique(small.mask)) <= {0, 1}
    assert (small.rgb[small.hinted] == (10, 200, 30)).all(), "colour kept, never blended with 0"
    assert not small.rgb[~small.hinted].any()


def test_resize_never_blends_colours_and_handles_rectangles() -> None:
    photo, mask = striped_garment()
    hints = simulate_hints(photo, mask, 9, n=24)
    originals = {tuple(c) for c in hints.rgb[hints.hinted]}
    for size in (128, 100, 512, (200, 300)):
        resized = resize_hints(hints, size)
        expected = (size, size) if isinstance(size, int) else size
        assert resized.mask.shape == expected
        got = {tuple(c) for c in resized.rgb[resized.hinted]}
        if resized.mask.shape[0] >= 256:
            assert got <= originals
        else:  # rescued pixels average one hint's pixels: still within the hint colours' range
            assert len(got - originals) <= max(3, len(got) // 10)
    up = resize_hints(hints, 512)
    assert up.mask.sum() == 4 * hints.mask.sum()
