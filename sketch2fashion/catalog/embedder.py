"""One image encoder for sketches, generated photos and catalog photos: a shared search space.

The search compares a shopper's sketch (and the photo generated from it) with shop photos. With
the SAME weights embedding all three, "which product looks like this drawing" is a dot product.
No pretrained backbone can be downloaded here, so the encoder is a small CNN trained from
scratch with a contrastive loss (`catalog.embedder_training`); it is cheap enough for a CPU.

Inputs are RGB in [-1, 1] (like the colorizer's photos); a sketch is its edge map drawn black
on white with the colour hints painted on top (`sketch_to_rgb`), exactly what a shopper draws.
Outputs are L2-normalised, so cosine similarity = dot product.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sketch2fashion.imaging.hints import Hints, compose_sketch
from sketch2fashion.imaging.framing import frame_content
from sketch2fashion.models.device import inference_autocast, pick_device

DEFAULT_DIM = 128
DEFAULT_SIZE = 128
DEFAULT_WIDTH = 32
DEFAULT_BLOCKS = 5
MAX_CHANNELS = 256
GROUPS = 8


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Halve the resolution: 3x3 stride-2 conv, GroupNorm (batch-size independent), ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, bias=False),
        nn.GroupNorm(min(GROUPS, out_channels), out_channels),
        nn.ReLU(inplace=True),
    )


class ImageEncoder(nn.Module):
    """Small CNN: `blocks` stride-2 conv blocks, global average pool, linear -> unit `dim` vector.

    Pooled ReLU features of different images share one big positive component (their cosine is
    ~0.99 at init), which InfoNCE cannot get out of: it collapses to ln(batch). A BatchNorm on
    the pooled features removes that common component (as SimCLR's heads do); in eval mode it
    uses its running statistics, so an image's embedding never depends on its batch.

    Channels double per block from `width`, capped at MAX_CHANNELS. `image_size` is recorded so
    callers (and a reloaded checkpoint) prepare images the way the encoder was trained.
    """

    def __init__(self, dim: int = DEFAULT_DIM, *, image_size: int = DEFAULT_SIZE,
                 width: int = DEFAULT_WIDTH, blocks: int = DEFAULT_BLOCKS) -> None:
        super().__init__()
        if dim < 1 or width < 1 or blocks < 1:
            raise ValueError(f"dim, width and blocks must be positive, got {dim}, {width}, {blocks}")
        self.dim, self.image_size, self.width, self.blocks = int(dim), int(image_size), int(width), int(blocks)
        channels = [3] + [min(MAX_CHANNELS, width * 2 ** i) for i in range(blocks)]
        self.features = nn.Sequential(*(_conv_block(a, b) for a, b in zip(channels, channels[1:])))
        self.centre = nn.BatchNorm1d(channels[-1])
        self.projection = nn.Linear(channels[-1], dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W in [-1, 1] -> N x dim, unit length (float32 even under autocast)."""
        pooled = self.centre(self.features(images).mean(dim=(2, 3)))
        return F.normalize(self.projection(pooled).float(), dim=1)

    def config(self) -> dict[str, int]:
        """Constructor arguments, saved beside the weights so a checkpoint rebuilds itself."""
        return {"dim": self.dim, "image_size": self.image_size, "width": self.width,
                "blocks": self.blocks}


def sketch_to_rgb(edges: np.ndarray, hints: Hints | None = None) -> np.ndarray:
    """An edge map (0 ink, 255 paper) as the RGB drawing the encoder sees, hints painted on."""
    if hints is None:
        return np.repeat(edges[..., None], 3, axis=2)
    return compose_sketch(edges, hints)


def prepare_image(rgb_u8: np.ndarray, size: int = DEFAULT_SIZE) -> torch.Tensor:
    """uint8 RGB (or grey) image of any shape -> 3 x size x size float32 in [-1, 1].

    Framed around its content first (imaging/framing.py: cropped to what is not paper, a fixed
    margin, padded square on white), so a small doodle in a corner and a centred catalog shot
    arrive at the same scale; then area-averaged down, which keeps thin sketch lines visible.
    """
    image = np.asarray(rgb_u8)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB or HxW grey, got shape {image.shape}")
    image = frame_content(image)
    if image.shape[0] != size:
        shrink = image.shape[0] > size
        image = cv2.resize(image, (size, size),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    return tensor / 127.5 - 1.0


def prepare_batch(images: Sequence[np.ndarray], size: int = DEFAULT_SIZE) -> torch.Tensor:
    """Several images -> N x 3 x size x size (see `prepare_image`)."""
    return torch.stack([prepare_image(image, size) for image in images])


def embed_images(encoder: ImageEncoder, images: Sequence[np.ndarray], batch_size: int = 64,
                 device: str | torch.device = "cpu", dtype: str | torch.dtype = "fp32") -> np.ndarray:
    """Unit embeddings (float32 N x dim) of uint8 RGB images, in eval mode without gradients.

    `dtype="auto"` uses bf16 autocast where the hardware has it (see models.device); fp32 by
    default so catalog vectors are reproducible bit for bit across machines. The encoder's
    train/eval mode is restored afterwards, so this can run in the middle of training.
    """
    device = pick_device(device) if isinstance(device, str) else device
    out = np.zeros((len(images), encoder.dim), np.float32)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode(), inference_autocast(device, dtype):
            for start in range(0, len(images), max(1, int(batch_size))):
                batch = prepare_batch(images[start:start + batch_size], encoder.image_size)
                vectors = encoder(batch.to(device))
                out[start:start + len(batch)] = F.normalize(vectors.float(), dim=1).cpu().numpy()
    finally:
        encoder.train(was_training)
    return out


def save_encoder(path: str | Path, encoder: ImageEncoder, extra: Mapping[str, Any] | None = None) -> None:
    """Weights + constructor config (+ e.g. training params) in one torch file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": encoder.config(), "state_dict": encoder.state_dict(),
                "extra": dict(extra or {})}, path)


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> ImageEncoder:
    """An encoder saved by `save_encoder`, in eval mode."""
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    encoder = ImageEncoder(**payload["config"])
    encoder.load_state_dict(payload["state_dict"])
    return encoder.to(device).eval()
