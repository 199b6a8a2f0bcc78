"""Garment isolation on synthetic photos whose true garment mask is known."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from sketch2fashion.imaging.isolate import (
    choose_method, composite_on_white, estimate_background, isolate_garment, mask_fraction,
)


def tshirt_mask(height: int, width: int, *, shift_y: int = 0) -> np.ndarray:
    """A t-shirt silhouette (body plus sleeves) centred in the frame."""
    sx, sy = width / 100.0, height / 100.0
    points = np.array([(30, 20), (42, 16), (58, 16), (70, 20), (86, 36), (76, 46), (68, 38),
                       (68, 84), (32, 84), (32, 38), (24, 46), (14, 36)], np.float64)
    points = np.round(points * (sx, sy) + (0, shift_y)).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [points], 255)
    return mask


def wooden_floor(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Planks of varying brown with grain stripes, seams and sensor noise: a busy backdrop."""
    floor = np.zeros((height, width, 3), np.float32)
    plank = 18
    for top in range(0, height, plank):
        base = np.array([150, 105, 60], np.float32) + rng.normal(0, 14, 3)
        xs = np.arange(width, dtype=np.float32)
        grain = 14 * np.sin(xs / rng.uniform(3, 9) + rng.uniform(0, 6))
        floor[top:top + plank] = base + grain[None, :, None]
        floor[top:top + 1] = base * 0.45     # dark seam between planks
    floor += rng.normal(0, 8, floor.shape)
    return np.clip(floor, 0, 255).astype(np.uint8)


def dress_in_colour(photo: np.ndarray, mask: np.ndarray, colour, rng: np.random.Generator) -> np.ndarray:
    """Paint a knitted-looking garment: flat colour, fine texture, a soft fold shadow."""
    height, width = mask.shape
    garment = np.empty((height, width, 3), np.float32)
    garment[:] = colour
    garment += rng.normal(0, 6, garment.shape)
    garment *= (0.85 + 0.15 * np.cos(np.arange(width) / width * np.pi))[None, :, None]
    out = photo.astype(np.float32)
    out[mask > 0] = garment[mask > 0]
    return np.clip(out, 0, 255).astype(np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum())


@pytest.fixture
def floor_photo() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    truth = tshirt_mask(320, 240)
    photo = dress_in_colour(wooden_floor(320, 240, rng), truth, (40, 70, 170), rng)
    return photo, truth


@pytest.mark.parametrize("method", ["auto", "grabcut"])
def test_garment_on_busy_floor_is_recovered(floor_photo, method):
    photo, truth = floor_photo
    mask = isolate_garment(photo, method=method)
    assert mask.shape == truth.shape and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    assert iou(mask, truth) > 0.8


def test_auto_uses_grabcut_on_busy_and_threshold_on_white(floor_photo):
    assert choose_method(floor_photo[0]) == "grabcut"
    white = np.full((200, 200, 3), 250, np.uint8)
    assert choose_method(white) == "threshold"


def test_dark_garment_on_dark_patterned_bed_is_recovered():
    """Garment and backdrop share dark tones; a light print must not be taken for the garment."""
    rng = np.random.default_rng(1)
    height, width = 300, 240
    yy, xx = np.mgrid[0:height, 0:width]
    bed = np.where(((yy // 14 + xx // 14) % 2)[..., None] == 0, (60, 45, 50), (95, 80, 85)).astype(np.float32)
    bed += rng.normal(0, 6, bed.shape)
    truth = tshirt_mask(height, width)
    photo = dress_in_colour(np.clip(bed, 0, 255).astype(np.uint8), truth, (35, 35, 45), rng)
    cv2.putText(photo, "S2F", (85, 170), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (240, 240, 240), 3)
    assert iou(isolate_garment(photo), truth) > 0.8


def test_light_garment_on_white_product_shot():
    """Cream garment on a white backdrop: tiny colour difference, still isolated."""
    rng = np.random.default_rng(2)
    truth = tshirt_mask(256, 256)
    backdrop = np.full((256, 256, 3), 255, np.uint8)
    photo = dress_in_colour(backdrop, truth, (246, 238, 218), rng)
    outline = cv2.morphologyEx(truth, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    photo[outline > 0] = (215, 205, 185)  # product renders have a soft edge shade
    for method in ("auto", "threshold"):
        assert iou(isolate_garment(photo, method=method), truth) > 0.9


def test_garment_running_out_of_frame():
    """Trousers whose legs leave the bottom edge are not cut off at the border band."""
    rng = np.random.default_rng(3)
    height, width = 320, 220
    truth = np.zeros((height, width), np.uint8)
    cv2.fillPoly(truth, [np.array([(60, 40), (160, 40), (175, 320), (120, 320), (110, 120),
                                   (100, 320), (45, 320)], np.int32)], 255)
    photo = dress_in_colour(wooden_floor(height, width, rng), truth, (30, 40, 90), rng)
    assert iou(isolate_garment(photo), truth) > 0.8


def test_isolation_is_deterministic(floor_photo):
    photo, _ = floor_photo
    assert np.array_equal(isolate_garment(photo), isolate_garment(photo))


def test_none_keeps_the_whole_frame_and_bad_method_is_refused(floor_photo):
    photo, _ = floor_photo
    assert mask_fraction(isolate_garment(photo, method="none")) == 1.0
    with pytest.raises(ValueError, match="unknown isolation method"):
        isolate_garment(photo, method="magic")


def test_estimate_background_reads_the_border():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:] = (200, 180, 40)
    img[30:70, 30:70] = (0, 0, 255)
    assert tuple(estimate_background(img)) == (200, 180, 40)


def test_composite_on_white_keeps_garment_and_whitens_backdrop(floor_photo):
    photo, truth = floor_photo
    out = composite_on_white(photo, truth)
    inner = cv2.erode(truth, np.ones((5, 5), np.uint8)) > 0
    outer = cv2.dilate(truth, np.ones((5, 5), np.uint8)) == 0
    assert np.array_equal(out[inner], photo[inner])
    assert (out[outer] == 255).all()
    edge = (truth > 0) & ~inner
    assert (out[edge].astype(int) - photo[edge]).max() > 0  # feathered, not a hard cut


def test_mask_fraction():
    mask = np.zeros((10, 10), np.uint8)
    mask[:5] = 255
    assert mask_fraction(mask) == 0.5
    assert mask_fraction(np.zeros((0, 0), np.uint8)) == 0.0


def test_search_sees_a_floor_photo_as_its_garment_on_white_and_a_product_shot_as_it_is(floor_photo):
    """What the index embeds and a /search upload is compared as (catalog/garment.py)."""
    from sketch2fashion.catalog.garment import garment_on_white

    photo, truth = floor_photo
    seen = garment_on_white(photo)
    outside = cv2.erode(255 - truth, np.ones((9, 9), np.uint8)) > 0
    assert seen[outside].min() >= 250  # the floor became white
    inside = cv2.erode(truth, np.ones((9, 9), np.uint8)) > 0
    assert np.abs(seen[inside].astype(int) - photo[inside].astype(int)).max() <= 1  # the garment kept
    shot = np.full((200, 200, 3), 255, np.uint8)
    cv2.circle(shot, (100, 100), 60, (200, 40, 40), -1)
    assert garment_on_white(shot) is shot  # a product shot on white is not touched
