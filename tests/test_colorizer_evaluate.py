"""Colorizer evaluation: exact scores for a perfect generator, sane ones for a random one, the
generator left as found, and a sample grid laid out sketch | generated | real."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from sketch2fashion.colorizer.dataset import ColorizerDataset
from sketch2fashion.colorizer.evaluate import (
    PSNR_CAP_DB,
    evaluate_generator,
    sample_grid,
    save_sample_grid,
)
from sketch2fashion.data.manifest import write_manifest
from sketch2fashion.imaging.hints import compose_sketch
from sketch2fashion.imaging.io import load_rgb, save_png
from sketch2fashion.metrics import l1, psnr, ssim
from sketch2fashion.models.inputs import photos_to_signed, to_images, unpack_sketches
from sketch2fashion.models.networks import UNetGenerator

SIZE = 64
HINTS = {"min": 0, "max": 12, "dot_radius": [2, 4], "stroke_fraction": 0.4}
CPU = torch.device("cpu")


def make_val_set(root: Path, n: int = 5) -> ColorizerDataset:
    """A data folder of n two-colour ellipse garments, all in the val split."""
    rows = []
    for i in range(n):
        item_id = f"skirt-{i:02d}"
        mask = np.zeros((SIZE, SIZE), np.uint8)
        cv2.ellipse(mask, (32, 34), (14 + i, 22), 0, 0, 360, 255, -1)
        photo = np.full((SIZE, SIZE, 3), 255, np.uint8)
        photo[mask > 0] = (40 * i, 120, 200 - 30 * i)
        photo[(mask > 0) & (np.arange(SIZE)[:, None] > 40)] = (220, 200, 30)
        edges = np.where(cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0,
                         0, 255).astype(np.uint8)
        for folder, image in (("raw", photo), ("masks", mask), ("edges", edges)):
            save_png(root / folder / "skirt" / f"{item_id}.png", image)
        rows.append({"id": item_id, "category": "skirt", "image": f"raw/skirt/{item_id}.png",
                     "mask": f"masks/skirt/{item_id}.png", "isolation": "ok", "split": "val"})
    write_manifest(root / "manifest.csv", rows)
    return ColorizerDataset(root, "skirt", "val", size=SIZE, train=False, hint_params=HINTS,
                            augment=None, seed=3)


class TargetLookup(nn.Module):
    """A 'generator' that knows the answers: returns each input's real photo, looked up."""

    def __init__(self, dataset: ColorizerDataset) -> None:
        super().__init__()
        self.answers = {self.key(unpack_sketches(item["sketch"][None])[0]): photos_to_signed(item["photo"])
                        for item in (dataset[i] for i in range(len(dataset)))}
        self.scale = nn.Parameter(torch.ones(1, 1, 1, 1))  # something for .to() to move

    @staticmethod
    def key(x: torch.Tensor) -> bytes:
        return x.float().contiguous().numpy().tobytes()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.answers[self.key(x)] for x in batch]) * self.scale


@pytest.fixture()
def val_set(tmp_path: Path) -> ColorizerDataset:
    return make_val_set(tmp_path)


def tiny_generator() -> UNetGenerator:
    torch.manual_seed(0)
    return UNetGenerator(ngf=8, depth=6, output="image")


def test_a_perfect_generator_scores_perfectly(val_set: ColorizerDataset) -> None:
    scores = evaluate_generator(TargetLookup(val_set), val_set, device=CPU, batch_size=2)
    assert scores == {"ssim": pytest.approx(1.0, abs=1e-12), "psnr": PSNR_CAP_DB,
                      "l1": 0.0, "hint_delta_e": pytest.approx(0.0, abs=1e-3),
                      "body_delta_e": scores["real_body_delta_e"], "real_body_delta_e": pytest.approx(0.0, abs=3.0),
                      "n": len(val_set)}


def test_body_colour_error_tells_the_hinted_colour_from_another(val_set: ColorizerDataset) -> None:
    """A 'generator' that returns its own fill (the hints' colours spread over the garment) scores
    ~0 body error; one that paints every garment grey scores far worse."""
    class Fill(nn.Module):
        def __init__(self, grey: bool) -> None:
            super().__init__()
            self.grey = grey
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            base = torch.where(x[:, 8:9] > 0, x[:, 5:8], torch.ones_like(x[:, 5:8]))
            return torch.where(x[:, 8:9] > 0, torch.zeros_like(base), base) if self.grey else base

    faithful = evaluate_generator(Fill(grey=False), val_set, device=CPU, autocast=False)
    grey = evaluate_generator(Fill(grey=True), val_set, device=CPU, autocast=False)
    assert faithful["body_delta_e"] < 1.0
    assert grey["body_delta_e"] > 20.0


def test_random_generator_scores_match_the_metrics_and_are_sane(val_set: ColorizerDataset) -> None:
    generator = tiny_generator().train()
    scores = evaluate_generator(generator, val_set, device=CPU, batch_size=2, autocast=False)
    assert generator.training  # handed back in the mode it came in
    assert scores["n"] == len(val_set)
    assert -1.0 < scores["ssim"] < 0.9 and 0.0 < scores["l1"] < 1.0 and 0.0 < scores["psnr"] < 30.0

    generator.eval()
    with torch.no_grad():
        inputs = unpack_sketches(torch.stack([val_set[i]["sketch"] for i in range(len(val_set))]))
        fake = to_images(generator(inputs))
    real = np.stack([val_set[i]["photo"].permute(1, 2, 0).numpy() for i in range(len(val_set))])
    assert scores["ssim"] == pytest.approx(ssim(fake, real).mean, abs=1e-9)
    assert scores["psnr"] == pytest.approx(psnr(fake, real).mean, abs=1e-9)
    assert scores["l1"] == pytest.approx(l1(fake, real).mean, abs=1e-9)


def test_autocast_scores_are_close_and_repeatable(val_set: ColorizerDataset) -> None:
    generator = tiny_generator()
    exact = evaluate_generator(generator, val_set, device=CPU, autocast=False)
    fast = evaluate_generator(generator, val_set, device=CPU, autocast=True)
    assert evaluate_generator(generator, val_set, device=CPU, autocast=True) == fast
    assert fast["ssim"] == pytest.approx(exact["ssim"], abs=0.02)
    assert next(generator.parameters()).is_contiguous()  # layout restored after channels-last


def test_training_datasets_are_refused(tmp_path: Path) -> None:
    make_val_set(tmp_path)
    train_mode = ColorizerDataset(tmp_path, "skirt", "val", size=SIZE, train=True, hint_params=HINTS,
                                  augment=None, seed=0)
    with pytest.raises(ValueError, match="train=False"):
        evaluate_generator(tiny_generator(), train_mode, device=CPU)


def test_sample_grid_rows_are_sketch_generated_real(val_set: ColorizerDataset, tmp_path: Path) -> None:
    grid = sample_grid(TargetLookup(val_set), val_set, n=3, device=CPU)
    assert grid.shape == (3 * SIZE, 3 * SIZE, 3) and grid.dtype == np.uint8
    for row in range(3):
        photo, _, prepared = val_set.prepared(row)
        band = grid[row * SIZE:(row + 1) * SIZE]
        assert np.array_equal(band[:, :SIZE], compose_sketch(prepared.edges, prepared.hints))
        assert np.array_equal(band[:, SIZE:2 * SIZE], photo)  # the lookup generator is perfect
        assert np.array_equal(band[:, 2 * SIZE:], photo)
    assert sample_grid(tiny_generator(), val_set, n=99, device=CPU).shape == (len(val_set) * SIZE, 3 * SIZE, 3)
    path = tmp_path / "samples" / "epoch_001.png"
    save_sample_grid(path, grid)
    assert np.array_equal(load_rgb(path), grid)
