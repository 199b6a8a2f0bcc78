"""The colorizer's training and validation samples: (sketch + hints) -> garment photo.

One item is one manifest row of a category and split, read from the data folder the DVC stages
fill (`manifest.csv`, `raw/`, `masks/`, `edges/`). Training items are augmented (framing, pen
habits) and get freshly simulated colour hints every epoch; evaluation items are never
augmented and get the same hints every time, so validation numbers compare across epochs and
runs.

Randomness is derived per item, never kept in the dataset: training draws come from
(seed, epoch, index) and evaluation draws from (seed, id). An item is therefore the same
whatever the iteration order, the number of DataLoader workers or the process it runs in.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sketch2fashion.colorizer.augment import SketchAugment
from sketch2fashion.data.manifest import ISOLATION_FAILED, read_manifest
from sketch2fashion.imaging.hints import Hints, simulate_hints
from sketch2fashion.models.inputs import to_generator_input, to_target

MANIFEST_NAME = "manifest.csv"
TRAIN_STREAM = 1
EVAL_STREAM = 2
"""Distinct RNG streams, so an evaluation item never repeats a training item's draws."""

Sample = dict[str, Any]


def hint_options(hint_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """params.yaml `hints` (min, max, dot_radius, stroke_fraction) -> `simulate_hints` keywords."""
    cfg = dict(hint_params or {})
    low, high = int(cfg.get("min", 0)), int(cfg.get("max", 24))
    if not 0 <= low <= high:
        raise ValueError(f"hints: need 0 <= min <= max, got min={low}, max={high}")
    radius = cfg.get("dot_radius", (2, 4))
    radius = (int(radius), int(radius)) if np.isscalar(radius) else (int(radius[0]), int(radius[1]))
    return {"n_range": (low, high), "dot_radius": radius,
            "stroke_fraction": float(cfg.get("stroke_fraction", 0.4))}


def id_key(item_id: str) -> int:
    """A stable 63-bit number for an id (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(item_id.encode("utf-8")).digest()[:8], "big") >> 1


def read_rgb(path: Path) -> np.ndarray:
    """RGB uint8 via cv2.imread: the stage outputs are trusted PNGs, so the fast path is safe."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path}: missing or unreadable; re-run the ingest stage (dvc repro)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_grey(path: Path, stage: str) -> np.ndarray:
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise FileNotFoundError(f"{path}: missing or unreadable; re-run the {stage} stage (dvc repro)")
    return grey


def fit_size(photo: np.ndarray, mask: np.ndarray, edges: np.ndarray,
             size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All three at size x size: the photo by area averaging (linear when enlarging), mask and
    edges nearest-neighbour so they stay binary."""
    if photo.shape[:2] != (size, size):
        shrink = photo.shape[0] >= size and photo.shape[1] >= size
        photo = cv2.resize(photo, (size, size),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if mask.shape[:2] != (size, size):
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    if edges.shape[:2] != (size, size):
        edges = cv2.resize(edges, (size, size), interpolation=cv2.INTER_NEAREST)
    return photo, mask, edges


class ColorizerDataset(Dataset):
    """Items dict(input=5xHxW float32, target=3xHxW float32 in [-1, 1], id=str) for one
    category and split of the data folder.

    Rows whose garment isolation failed are skipped: their "garment on white" photo still
    holds the original background, so the mask is wrong, the edge map traces clutter and
    hints could be painted off the garment; training on them teaches the model to paint
    backgrounds, and scoring on them measures background reconstruction.
    """

    def __init__(self, data_dir: str | Path, category: str, split: str, *, size: int, train: bool,
                 hint_params: Mapping[str, Any] | None = None, augment: SketchAugment | None = None,
                 seed: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.category = category
        self.split = split
        self.size = int(size)
        self.train = bool(train)
        self.hints = hint_options(hint_params)
        self.augment = augment if self.train else None
        self.seed = int(seed)
        self.epoch = 0
        rows = [r for r in read_manifest(self.data_dir / MANIFEST_NAME)
                if r["category"] == category and r["split"] == split]
        self.rows = [r for r in rows if r["isolation"] != ISOLATION_FAILED]
        self.skipped_failed = len(rows) - len(self.rows)
        if not self.rows:
            raise ValueError(
                f"{self.data_dir / MANIFEST_NAME}: no usable {split!r} rows for category "
                f"{category!r} ({self.skipped_failed} skipped for failed isolation); check "
                "params categories/split or add photos")
        self._check_files()

    def _check_files(self) -> None:
        """Fail at start-up, naming the stage to run, rather than in a worker mid-epoch."""
        for row in self.rows:
            for path, stage in ((self.data_dir / row["image"], "ingest"),
                                (self.data_dir / row["mask"], "ingest"),
                                (self.edge_path(row), "edges")):
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: missing; run the {stage} stage (dvc repro)")

    def edge_path(self, row: Mapping[str, str]) -> Path:
        return self.data_dir / "edges" / row["category"] / f"{row['id']}.png"

    @property
    def ids(self) -> list[str]:
        return [row["id"] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Training draws depend on the epoch; call before each epoch's DataLoader iteration."""
        self.epoch = int(epoch)

    def rng_for(self, index: int) -> np.random.Generator:
        """This item's generator: (seed, epoch, index) in training, (seed, id) in evaluation."""
        if self.train:
            return np.random.default_rng([self.seed, TRAIN_STREAM, self.epoch, int(index)])
        return np.random.default_rng([self.seed, EVAL_STREAM, id_key(self.rows[index]["id"])])

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(photo RGB, mask 0/255, edges 0 ink / 255 paper), all uint8 at size x size."""
        row = self.rows[index]
        photo = read_rgb(self.data_dir / row["image"])
        mask = read_grey(self.data_dir / row["mask"], "ingest")
        edges = read_grey(self.edge_path(row), "edges")
        photo, mask, edges = fit_size(photo, mask, edges, self.size)
        return photo, np.where(mask > 127, 255, 0).astype(np.uint8), edges

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Hints]:
        """(photo, mask, edges, hints) of one item as uint8 arrays, after any augmentation.

        Hints come last, from the (augmented) photo and mask, so they sit on the garment as it
        appears in the target, and at the final size, so no hint is ever interpolated.
        """
        rng = self.rng_for(index)
        photo, mask, edges = self.load(index)
        if self.augment is not None:
            photo, mask, edges = self.augment.geometric(rng, self.size).apply(photo, mask, edges)
            edges = self.augment.sketch(edges, mask, rng)
        hints = simulate_hints(photo, mask, rng, **self.hints)
        return photo, mask, edges, hints

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for {len(self.rows)} items")
        photo, _, edges, hints = self.arrays(index)
        return {"input": to_generator_input(edges, hints.rgb, hints.mask),
                "target": to_target(photo), "id": self.rows[index]["id"]}


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int = 0, *,
                seed: int = 0, drop_last: bool = False, pin_memory: bool = False) -> DataLoader:
    """A DataLoader suited to ColorizerDataset.

    Workers are not persistent: each epoch's workers get a fresh copy of the dataset, which is
    how `set_epoch` reaches them. The shuffle order comes from its own seeded generator, so a
    run's order is reproducible; item contents never depend on it.

    With workers, OpenCV in this process is set to one thread (a process-wide setting), before
    the workers fork: N workers each running a full OpenCV thread pool would oversubscribe the
    CPU, and calling cv2.setNumThreads inside a forked worker deadlocks (OpenCV's pthreads pool
    does not survive fork). torch already runs one thread per worker.
    """
    if num_workers > 0:
        cv2.setNumThreads(1)
    generator = torch.Generator().manual_seed(int(seed)) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      drop_last=drop_last, pin_memory=pin_memory, generator=generator,
                      persistent_workers=False)
