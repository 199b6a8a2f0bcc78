"""Colorizer training data: augmentations that look like shoppers' drawings yet keep photo, mask
and sketch aligned, and a dataset whose evaluation items never change while training items do."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sketch2fashion.colorizer.augment import (
    GeometricTransform,
    SketchAugment,
    augment_from_params,
    break_strokes,
    change_line_weight,
    drop_details,
    geometric,
    jitter_line_weight,
    wobble,
)
from sketch2fashion.colorizer.dataset import ColorizerDataset, make_loader
from sketch2fashion.models.inputs import unpack_sketches
from sketch2fashion.data.manifest import write_manifest
from sketch2fashion.imaging.io import save_png
from sketch2fashion.imaging.outline import outline_closure

HINTS = {"min": 0, "max": 24, "dot_radius": [2, 4], "stroke_fraction": 0.4}
RED, BLUE = (200, 30, 40), (30, 60, 170)


def ink(edges: np.ndarray) -> np.ndarray:
    return edges < 128


def ink_count(edges: np.ndarray) -> int:
    return int(np.count_nonzero(ink(edges)))


def components(edges: np.ndarray) -> int:
    return cv2.connectedComponents(ink(edges).astype(np.uint8), connectivity=8)[0] - 1


def garment(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo, mask, edges) of a two-colour off-centre box with a seam line, on white."""
    rng = np.random.default_rng(seed)
    s = size / 64
    x0, y0 = int((8 + rng.integers(0, 6)) * s), int((10 + rng.integers(0, 6)) * s)
    x1, y1 = int(40 * s), int(54 * s)
    mask = np.zeros((size, size), np.uint8)
    mask[y0:y1, x0:x1] = 255
    photo = np.full((size, size, 3), 255, np.uint8)
    mid = (y0 + y1) // 2
    photo[y0:mid, x0:x1] = RED
    photo[mid:y1, x0:x1] = BLUE
    edges = np.full((size, size), 255, np.uint8)
    cv2.rectangle(edges, (x0, y0), (x1 - 1, y1 - 1), 0, thickness=max(1, round(s)))
    cv2.line(edges, (x0 + 3, mid), (x1 - 4, mid), 0, thickness=max(1, round(s)))
    return photo, mask, edges


def make_data_dir(root: Path, *, n_train: int = 6, n_val: int = 4, size: int = 64,
                  failed: tuple[str, ...] = (), category: str = "top") -> Path:
    """A data folder laid out as the DVC stages leave it, with a manifest of synthetic garments."""
    rows = []
    for i in range(n_train + n_val):
        item_id = f"{category}-{i:03d}"
        photo, mask, edges = garment(size, i)
        save_png(root / "raw" / category / f"{item_id}.png", photo)
        save_png(root / "masks" / category / f"{item_id}.png", mask)
        save_png(root / "edges" / category / f"{item_id}.png", edges)
        rows.append({"id": item_id, "category": category, "image": f"raw/{category}/{item_id}.png",
                     "mask": f"masks/{category}/{item_id}.png", "source": "synthetic",
                     "width": size, "height": size, "mask_fraction": float((mask > 0).mean()),
                     "isolation": "failed" if item_id in failed else "ok",
                     "split": "train" if i < n_train else "val"})
    write_manifest(root / "manifest.csv", rows)
    return root


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return make_data_dir(tmp_path)


# --- geometric -------------------------------------------------------------------------------

def boundary_of(mask: np.ndarray) -> np.ndarray:
    inside = (mask > 0).astype(np.uint8)
    return (inside > 0) & ~(cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0)


def distance_to(points: np.ndarray) -> np.ndarray:
    """Per pixel, the distance to the nearest True pixel of `points`."""
    return cv2.distanceTransform((~points).astype(np.uint8), cv2.DIST_L2, 5)


def test_geometric_moves_photo_mask_and_edges_together() -> None:
    photo, mask, _ = garment(128, 3)
    edges = np.where(boundary_of(mask), 0, 255).astype(np.uint8)  # outline exactly on the mask edge
    for seed in range(12):
        transform = geometric(np.random.default_rng(seed), 128)
        new_photo, new_mask, new_edges = transform.apply(photo, mask, edges)
        rim = boundary_of(new_mask)
        assert distance_to(rim)[ink(new_edges)].max() <= 1.5, seed  # no ink off the outline
        assert np.mean(distance_to(ink(new_edges))[rim] <= 1.5) > 0.97, seed  # outline complete
        garment_pixels = (new_photo < 250).any(axis=2)
        inside = new_mask > 0
        iou = np.count_nonzero(garment_pixels & inside) / np.count_nonzero(garment_pixels | inside)
        assert iou > 0.95, seed
        assert set(np.unique(new_mask)) <= {0, 255} and set(np.unique(new_edges)) <= {0, 255}


def test_geometric_varies_and_flips_exactly() -> None:
    photo, mask, edges = garment(64, 1)
    mirror = geometric(np.random.default_rng(0), 64, p_flip=1.0, max_rotation=0,
                       scale_range=(1.0, 1.0), max_shift=0.0)
    assert np.array_equal(mirror.photo(photo), photo[:, ::-1])
    assert np.array_equal(mirror.mask(mask), mask[:, ::-1])
    assert np.array_equal(mirror.edges(edges), edges[:, ::-1])
    identity = GeometricTransform(np.array([[1.0, 0, 0], [0, 1.0, 0]]), 64)
    assert np.array_equal(identity.edges(edges), edges)
    matrices = [geometric(np.random.default_rng(s), 64).matrix for s in range(20)]
    assert len({m.round(6).tobytes() for m in matrices}) == 20
    flips = [np.linalg.det(m[:, :2]) < 0 for m in matrices]
    assert 0 < sum(flips) < 20  # some mirrored, some not


def thin_circle(size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (size // 2, size // 2), size * 3 // 8, 255, -1)
    edges = np.full((size, size), 255, np.uint8)
    cv2.circle(edges, (size // 2, size // 2), size * 3 // 8, 0, 1)
    return mask, edges


def test_zoom_out_and_rotation_keep_a_one_pixel_outline_closed() -> None:
    mask, edges = thin_circle()
    for seed in range(6):
        transform = geometric(np.random.default_rng(seed), 256, scale_range=(0.9, 0.9))
        assert outline_closure(transform.edges(edges), transform.mask(mask)) == 1.0, seed


# --- pen habits ------------------------------------------------------------------------------

def test_line_weight_changes_ink_in_the_direction_asked() -> None:
    _, _, edges = garment(256, 0)  # 4 px lines
    assert np.array_equal(change_line_weight(edges, 0), edges)
    heavier, lighter = change_line_weight(edges, 1), change_line_weight(edges, -1)
    assert ink_count(heavier) > 1.2 * ink_count(edges)
    assert ink_count(lighter) < 0.8 * ink_count(edges)
    assert ink(edges)[ink(lighter)].all() and ink(heavier)[ink(edges)].all()
    assert components(lighter) == components(edges)  # thinner, never erased


def test_thinning_keeps_one_pixel_lines() -> None:
    mask, edges = thin_circle()
    assert np.array_equal(change_line_weight(edges, -2), edges)


def test_jitter_line_weight_goes_both_ways_and_scales_with_the_image() -> None:
    _, _, edges = garment(256, 0)
    counts = {ink_count(jitter_line_weight(edges, np.random.default_rng(s), 2.0)) for s in range(20)}
    assert min(counts) < ink_count(edges) < max(counts)
    assert np.array_equal(jitter_line_weight(edges, np.random.default_rng(0), 0.0), edges)
    _, _, small = garment(64, 0)  # 2.0 px at 256 is at most 0.5 px at 64: rounds to no change
    assert all(np.array_equal(jitter_line_weight(small, np.random.default_rng(s), 1.9), small)
               for s in range(10))


def test_break_strokes_cuts_lines_but_keeps_most_ink() -> None:
    _, _, edges = garment(256, 0)
    broken = break_strokes(edges, np.random.default_rng(0), n_gaps=3, gap_len=6)
    assert ink(edges)[ink(broken)].all()  # erases only
    assert 0.85 * ink_count(edges) < ink_count(broken) < ink_count(edges)
    assert components(broken) > components(edges)  # a real cut, not a nick
    assert np.array_equal(break_strokes(edges, np.random.default_rng(0), 0), edges)


def test_drop_details_keeps_the_outline_and_drops_inner_lines() -> None:
    _, mask, edges = garment(128, 2)
    outline = ink(edges) & (distance_to(boundary_of(mask)) <= 1)
    simplified = drop_details(edges, np.random.default_rng(0), mask, drop_fraction=1.0)
    assert ink(simplified)[outline].all()
    assert ink_count(simplified) < ink_count(edges) - 40  # the seam line is gone
    assert np.array_equal(drop_details(edges, np.random.default_rng(0), mask, 0.0), edges)
    kept = [ink_count(drop_details(edges, np.random.default_rng(s), mask, 0.5)) for s in range(12)]
    assert min(kept) < ink_count(edges) == max(kept)  # sometimes dropped, sometimes kept


def test_wobble_moves_lines_a_little_and_keeps_outlines_closed() -> None:
    mask, edges = thin_circle()
    for seed in range(4):
        wobbly = wobble(edges, np.random.default_rng(seed), amplitude=1.5)
        assert not np.array_equal(wobbly, edges)
        assert distance_to(ink(edges))[ink(wobbly)].max() <= 6
        assert 0.9 * ink_count(edges) < ink_count(wobbly) < 1.3 * ink_count(edges)
        assert outline_closure(wobbly, mask) > 0.99


def test_augment_params_are_checked() -> None:
    augment = augment_from_params({"p_flip": 0, "scale_range": [0.95, 1.05], "max_gaps": 1})
    assert augment == SketchAugment(p_flip=0.0, scale_range=(0.95, 1.05), max_gaps=1)
    assert augment_from_params({"enabled": False}) is None
    assert augment_from_params(None) is None
    with pytest.raises(ValueError, match="p_flp"):
        augment_from_params({"p_flp": 0.5})
    with pytest.raises(ValueError, match="p_break"):
        SketchAugment(p_break=1.5)


# --- dataset ---------------------------------------------------------------------------------

def dataset(data_dir: Path, split: str = "val", *, train: bool = False, seed: int = 0,
            size: int = 64, **kw) -> ColorizerDataset:
    return ColorizerDataset(data_dir, "top", split, size=size, train=train, hint_params=HINTS,
                            augment=SketchAugment() if train else None, seed=seed, **kw)


def same_item(a: dict, b: dict) -> bool:
    return a["id"] == b["id"] and torch.equal(a["sketch"], b["sketch"]) and torch.equal(a["photo"], b["photo"])


def test_items_have_the_generator_layout(data_dir: Path) -> None:
    item = dataset(data_dir, "train", train=True)[0]
    assert item["sketch"].shape == (9, 64, 64) and item["sketch"].dtype == torch.uint8
    assert item["photo"].shape == (3, 64, 64) and item["photo"].dtype == torch.uint8 and item["id"] == "top-000"
    x = unpack_sketches(item["sketch"][None])[0]
    assert x.min() >= -1 and x.max() <= 1
    assert set(x[4].unique().tolist()) <= {0.0, 1.0}
    assert "body" not in item and "body" in dataset(data_dir)[0]  # the body mask is for scoring only


def test_hinted_items_carry_the_flat_fill_of_their_hints(data_dir: Path) -> None:
    data = dataset(data_dir, "train", train=True)
    for epoch in range(4):
        data.set_epoch(epoch)
        for index in range(len(data)):
            photo, mask, prepared = data.prepared(index)
            if not prepared.hints.hinted.any():
                continue
            weight = prepared.fill.weight
            assert (weight[prepared.hints.hinted] > 0).all()  # every hint lies in its own fill
            assert (weight > 0).sum() > 4 * prepared.hints.hinted.sum()  # and the fill spreads it
            return
    pytest.fail("no hinted item drawn")


def test_doodle_share_mixes_doodles_into_training_and_doodle_eval_sets_are_all_doodles(data_dir: Path) -> None:
    plain = dataset(data_dir, "train", train=True)
    mixed = dataset(data_dir, "train", train=True, doodle_share=0.5)
    doodled = sum(not np.array_equal(plain.arrays(i)[2], mixed.arrays(i)[2]) for i in range(len(plain)))
    assert 0 < doodled < len(plain)
    edge_eval, doodle_eval = dataset(data_dir), dataset(data_dir, doodles=True)
    assert all(not np.array_equal(edge_eval.arrays(i)[2], doodle_eval.arrays(i)[2]) for i in range(len(edge_eval)))
    assert all(same_item(doodle_eval[i], dataset(data_dir, doodles=True)[i]) for i in range(len(doodle_eval)))
    with pytest.raises(ValueError, match="doodle_share"):
        dataset(data_dir, "train", train=True, doodles=True)


def test_eval_items_never_change(data_dir: Path) -> None:
    first, second = dataset(data_dir), dataset(data_dir)
    second.set_epoch(7)  # irrelevant in evaluation
    forward = [first[i] for i in range(len(first))]
    backward = [second[i] for i in reversed(range(len(second)))][::-1]
    assert all(same_item(a, b) for a, b in zip(forward, backward))
    assert all(same_item(first[i], forward[i]) for i in range(len(first)))
    reseeded = dataset(data_dir, seed=1)
    assert any(not same_item(reseeded[i], forward[i]) for i in range(len(reseeded)))  # seed matters


def test_eval_items_do_not_depend_on_the_worker_count(data_dir: Path) -> None:
    data = dataset(data_dir)
    direct = torch.stack([data[i]["sketch"] for i in range(len(data))])
    batches = list(make_loader(data, batch_size=3, shuffle=False, num_workers=2))
    assert torch.equal(torch.cat([b["sketch"] for b in batches]), direct)
    assert sum((b["id"] for b in batches), []) == data.ids


def test_train_items_change_with_the_epoch_and_repeat_within_it(data_dir: Path) -> None:
    data = dataset(data_dir, "train", train=True)
    epoch0 = [data[i] for i in range(len(data))]
    assert all(same_item(data[i], epoch0[i]) for i in range(len(data)))
    data.set_epoch(1)
    epoch1 = [data[i] for i in range(len(data))]
    assert sum(not torch.equal(a["sketch"], b["sketch"]) for a, b in zip(epoch0, epoch1)) >= len(data) - 1
    assert any(not torch.equal(a["photo"], b["photo"]) for a, b in zip(epoch0, epoch1))  # framing


def test_hints_lie_on_the_augmented_garment_and_vary_in_number(data_dir: Path) -> None:
    data = dataset(data_dir, "train", train=True)
    counts = []
    for epoch in range(8):
        data.set_epoch(epoch)
        for index in range(len(data)):
            photo, mask, _, hints = data.arrays(index)
            assert not (hints.hinted & (mask == 0)).any()
            assert (photo[hints.hinted] < 250).any(axis=1).all()  # garment colours, not white
            counts.append(cv2.connectedComponents(hints.mask, connectivity=8)[0] - 1)
        assert torch.equal(data[0]["sketch"][4] > 0, torch.from_numpy(data.arrays(0)[3].mask > 0))
    assert 0 in counts and max(counts) >= 5 and len(set(counts)) >= 4


def test_failed_isolation_rows_are_skipped(tmp_path: Path) -> None:
    root = make_data_dir(tmp_path, failed=("top-001", "top-007"))
    train, val = dataset(root, "train", train=True), dataset(root, "val")
    assert "top-001" not in train.ids and len(train) == 5 and train.skipped_failed == 1
    assert "top-007" not in val.ids and len(val) == 3


def test_images_are_resized_to_the_requested_size(data_dir: Path) -> None:
    data = dataset(data_dir, "train", train=True, size=32)
    photo, mask, edges, hints = data.arrays(0)
    assert photo.shape == (32, 32, 3) and mask.shape == edges.shape == hints.mask.shape == (32, 32)
    assert set(np.unique(mask)) <= {0, 255} and set(np.unique(edges)) <= {0, 255}
    assert data[0]["sketch"].shape == (9, 32, 32)


def test_missing_files_and_empty_selections_fail_early(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="no usable"):
        ColorizerDataset(data_dir, "hat", "train", size=64, train=True, hint_params=HINTS,
                         augment=None, seed=0)
    (data_dir / "edges" / "top" / "top-008.png").unlink()
    with pytest.raises(FileNotFoundError, match="edges stage"):
        dataset(data_dir)
