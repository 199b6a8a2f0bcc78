"""The colorizer's training and validation samples: (sketch + hints) -> garment photo.

One item is one manifest row of a category and split, read from the data folder the DVC stages
fill (`manifest.csv`, `raw/`, `masks/`, `edges/`). The sketch is either the product's edge map
(redrawn with pen habits in training) or, for a share `doodle_share` of items, a quick doodle
of its outline (colorizer/doodle.py) with the photo re-cut to match. Training items are
augmented and get freshly simulated colour hints every epoch; evaluation items are never
augmented and get the same sketch and hints every time (an evaluation set is all edge maps or,
with `doodles=True`, all doodles in the evaluation style), so numbers compare across epochs and
runs. Every sketch then goes through the serving preprocessing (`imaging.flat_fill.prepare_fill`:
openings closed, hints filled) before it becomes the generator's 9-channel input.

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
from sketch2fashion.colorizer.doodle import EVAL_STYLE, TRAIN_STYLE, DoodleStyle, synthesise_doodle
from sketch2fashion.data.manifest import ISOLATION_FAILED, read_manifest
from sketch2fashion.imaging.flat_fill import PreparedInput, prepare_fill
from sketch2fashion.imaging.hints import Hints, simulate_hints
from sketch2fashion.models.inputs import pack_sketches

MANIFEST_NAME = "manifest.csv"
TRAIN_STREAM = 1
EVAL_STREAM = 2
DOODLE_EVAL_STREAM = 3
"""Distinct RNG streams, so an evaluation item never repeats a training item's draws."""
BODY_MARGIN = 3
"""Pixels (at 256 px) trimmed off the garment's edge for the body colour error: the edge itself
is anti-aliased against the backdrop in every photo."""

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
    """Items dict(sketch=uint8 9 x H x W packed generator input (models.inputs.pack_sketches),
    photo=uint8 3 x H x W, id=str, and in evaluation body=bool H x W) for one category and
    split of the data folder. Batches become float with `models.inputs.unpack_sketches` and
    `photos_to_signed`, once per batch rather than per item.

    Rows whose garment isolation failed are skipped: their "garment on white" photo still
    holds the original background, so the mask is wrong, the edge map traces clutter and
    hints could be painted off the garment; training on them teaches the model to paint
    backgrounds, and scoring on them measures background reconstruction.
    """

    def __init__(self, data_dir: str | Path, category: str, split: str, *, size: int, train: bool,
                 hint_params: Mapping[str, Any] | None = None, augment: SketchAugment | None = None,
                 seed: int = 0, doodle_share: float = 0.0, doodle_style: DoodleStyle | None = None,
                 doodles: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.category = category
        self.split = split
        self.size = int(size)
        self.train = bool(train)
        self.hints = hint_options(hint_params)
        self.augment = augment if self.train else None
        self.seed = int(seed)
        self.epoch = 0
        if not 0.0 <= doodle_share <= 1.0:
            raise ValueError(f"doodle share must be within 0..1, got {doodle_share}")
        if doodles and self.train:
            raise ValueError("doodles=True makes an evaluation set; training mixes them in with doodle_share")
        self.doodle_share = float(doodle_share) if self.train else (1.0 if doodles else 0.0)
        self.doodle_style = doodle_style or (TRAIN_STYLE if self.train else EVAL_STYLE)
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
        stream = DOODLE_EVAL_STREAM if self.doodle_share else EVAL_STREAM
        return np.random.default_rng([self.seed, stream, id_key(self.rows[index]["id"])])

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(photo RGB, mask 0/255, edges 0 ink / 255 paper), all uint8 at size x size."""
        row = self.rows[index]
        photo = read_rgb(self.data_dir / row["image"])
        mask = read_grey(self.data_dir / row["mask"], "ingest")
        edges = read_grey(self.edge_path(row), "edges")
        photo, mask, edges = fit_size(photo, mask, edges, self.size)
        return photo, np.where(mask > 127, 255, 0).astype(np.uint8), edges

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Hints]:
        """(photo, mask, sketch edges, hints) of one item as uint8 arrays, after any augmentation.

        A doodle item draws the outline afresh and re-cuts the photo to it; an edge-map item is
        augmented (framing, pen habits) in training. Hints come last, from the final photo and
        mask, so they sit on the garment as it appears in the target, and at the final size, so
        no hint is ever interpolated.
        """
        rng = self.rng_for(index)
        photo, mask, edges = self.load(index)
        if rng.random() < self.doodle_share:
            doodle = synthesise_doodle(photo, mask, edges, rng, self.doodle_style)
            photo, mask, edges = doodle.photo, doodle.mask, doodle.edges
        elif self.augment is not None:
            photo, mask, edges = self.augment.geometric(rng, self.size).apply(photo, mask, edges)
            edges = self.augment.sketch(edges, mask, rng)
        hints = simulate_hints(photo, mask, rng, **self.hints)
        return photo, mask, edges, hints

    def prepared(self, index: int) -> tuple[np.ndarray, np.ndarray, PreparedInput]:
        """(photo, mask, the sketch as the generator gets it: closed outline, hints and fill)."""
        photo, mask, edges, hints = self.arrays(index)
        return photo, mask, prepare_fill(edges, hints)

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for {len(self.rows)} items")
        photo, mask, prepared = self.prepared(index)
        packed = pack_sketches(prepared.edges[None], prepared.hints.rgb[None], prepared.hints.mask[None],
                               prepared.fill.rgb[None], prepared.fill.weight[None])[0]
        item = {"sketch": torch.from_numpy(packed), "photo": torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1))),
                "id": self.rows[index]["id"]}
        if not self.train:
            item["body"] = torch.from_numpy(garment_body(mask))
        return item


def garment_body(mask: np.ndarray) -> np.ndarray:
    """The garment mask without its outermost BODY_MARGIN pixels (scaled to the image): where a
    photo's colour is the garment's own, not a blend with the backdrop."""
    margin = max(1, int(round(BODY_MARGIN * mask.shape[0] / 256.0)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return cv2.erode((mask > 0).astype(np.uint8), disc) > 0


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
