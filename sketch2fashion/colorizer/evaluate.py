"""Score a generator on a validation set and draw a picture of what it does.

Scores are computed on 8-bit images (generator output quantised with `models.inputs.to_images`,
as served), so they are the numbers a shopper's photo would get, comparable across runs that
train in different precisions. Evaluation leaves the generator as it found it (train/eval mode
and memory layout), because the training loop calls it between epochs.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from sketch2fashion.colorizer.dataset import make_loader
from sketch2fashion.imaging.hints import Hints, compose_sketch
from sketch2fashion.imaging.io import save_png
from sketch2fashion.metrics import l1, psnr, ssim
from sketch2fashion.metrics.hint_fidelity import body_delta_e_of_inputs, hint_delta_e_of_inputs
from sketch2fashion.models.device import inference_autocast, inference_memory_format, resolve_dtype
from sketch2fashion.models.inputs import to_images, unpack_sketches

PSNR_CAP_DB = 100.0
"""Per-image PSNR ceiling. An exact copy scores +inf, which JSON metrics and MLflow cannot hold;
100 dB is above anything short of a near-exact 8-bit copy."""


def _memory_format_of(module: nn.Module) -> torch.memory_format:
    """channels-last if the module's 4-D weights are stored that way, else contiguous."""
    for param in module.parameters():
        if param.dim() == 4:
            if param.is_contiguous(memory_format=torch.channels_last) and not param.is_contiguous():
                return torch.channels_last
            return torch.contiguous_format
    return torch.contiguous_format


@contextlib.contextmanager
def inference_setup(generator: nn.Module, device: torch.device,
                    autocast: bool) -> Iterator[tuple[torch.dtype, torch.memory_format]]:
    """Eval mode, the device's fast inference layout and no autograd; restored on exit.

    bf16 autocast only pays with channels-last tensors (see models.device), so the generator is
    switched to that layout for the evaluation and back afterwards.
    """
    dtype = resolve_dtype(device, "auto" if autocast else "fp32")
    memory_format = inference_memory_format(dtype)
    was_training = generator.training
    original_format = _memory_format_of(generator)
    generator.to(device=device, memory_format=memory_format)
    generator.eval()
    try:
        with torch.inference_mode(), inference_autocast(device, dtype):
            yield dtype, memory_format
    finally:
        generator.to(memory_format=original_format)
        generator.train(was_training)


def _generate(generator: nn.Module, inputs: torch.Tensor, device: torch.device,
              memory_format: torch.memory_format) -> np.ndarray:
    """Generated photos N x H x W x 3 uint8 for a batch of generator inputs."""
    return to_images(generator(inputs.to(device, memory_format=memory_format)))


def evaluate_generator(generator: nn.Module, dataset: Dataset, *, device: torch.device | str,
                       batch_size: int = 16, autocast: bool = True,
                       num_workers: int = 0) -> dict[str, float]:
    """Mean SSIM, PSNR (dB, capped per image at PSNR_CAP_DB) and L1 (fraction of 255) over the
    whole dataset, and the item count n.

    The dataset should be in evaluation mode (train=False): its items are then identical on
    every call, so the numbers compare across epochs and runs.
    """
    if getattr(dataset, "train", False):
        raise ValueError("evaluate_generator needs a dataset built with train=False; augmented, "
                         "re-drawn items would make the scores incomparable between calls")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("evaluate_generator: the dataset is empty")
    device = torch.device(device)
    totals = {"ssim": 0.0, "psnr": 0.0, "l1": 0.0}
    n = 0
    delta_e: list[float] = []
    body: list[float] = []
    real_body: list[float] = []
    loader = make_loader(dataset, batch_size, shuffle=False, num_workers=num_workers)
    with inference_setup(generator, device, autocast) as (_, memory_format):
        for batch in loader:
            inputs = unpack_sketches(batch["sketch"])
            fake = _generate(generator, inputs, device, memory_format)
            real = np.ascontiguousarray(batch["photo"].permute(0, 2, 3, 1).numpy())
            totals["ssim"] += float(ssim(fake, real).per_image.sum())
            totals["psnr"] += float(psnr(fake, real).per_image.clamp(max=PSNR_CAP_DB).sum())
            totals["l1"] += float(l1(fake, real).per_image.sum())
            delta_e += hint_delta_e_of_inputs(fake, inputs)
            if "body" in batch:
                body += body_delta_e_of_inputs(fake, inputs, batch["body"])
                real_body += body_delta_e_of_inputs(real, inputs, batch["body"])
            n += len(fake)
    scores = {name: total / n for name, total in totals.items()}
    if delta_e:  # colour error at the hints (metrics/hint_fidelity.py); absent when no sketch had hints
        scores["hint_delta_e"] = float(np.mean(delta_e))
    if body:  # median colour error over the garment body against the hints' fill, median over images
        scores["body_delta_e"] = float(np.median(body))
        scores["real_body_delta_e"] = float(np.median(real_body))
    if not all(math.isfinite(v) for v in scores.values()):
        raise FloatingPointError(f"evaluate_generator: non-finite scores {scores}; "
                                 "the generator produced NaNs")
    return {**scores, "n": n}


def sketch_of(inputs: torch.Tensor) -> np.ndarray:
    """The drawing a generator input stands for (black lines, coloured hints), H x W x 3 RGB."""
    edges = to_images(inputs[None, [0, 0, 0]])[0][..., 0]
    hint_rgb = to_images(inputs[None, 1:4])[0]
    hint_mask = (inputs[4] > 0.5).cpu().numpy().astype(np.uint8)
    return compose_sketch(edges, Hints(np.where(hint_mask[..., None] > 0, hint_rgb, 0).astype(np.uint8),
                                       hint_mask))


def sample_grid(generator: nn.Module, dataset: Dataset, *, n: int = 6, device: torch.device | str,
                autocast: bool = True) -> np.ndarray:
    """An RGB picture, one row per item for the dataset's first n items:
    sketch with hints | generated photo | real photo. Shape (n * H, 3 * W, 3), uint8."""
    count = min(int(n), len(dataset))  # type: ignore[arg-type]
    if count <= 0:
        raise ValueError("sample_grid needs n >= 1 and a non-empty dataset")
    items = [dataset[i] for i in range(count)]
    inputs = unpack_sketches(torch.stack([item["sketch"] for item in items]))
    device = torch.device(device)
    with inference_setup(generator, device, autocast) as (_, memory_format):
        fake = _generate(generator, inputs, device, memory_format)
    real = np.ascontiguousarray(torch.stack([item["photo"] for item in items]).permute(0, 2, 3, 1).numpy())
    sketches = np.stack([sketch_of(x) for x in inputs])
    rows = np.concatenate([sketches, fake, real], axis=2)  # N x H x 3W x 3
    return np.ascontiguousarray(rows.reshape(-1, rows.shape[2], 3))


def save_sample_grid(path: str | Path, grid: np.ndarray) -> str:
    """Write the grid as a PNG (atomically); returns its sha256."""
    return save_png(path, grid)
