"""Flat colour fill of the hints, inside the generator: the U-Net only has to shade it.

A shopper drops a few dots; the photo must be that colour over the whole region the dots sit
in. Learning that spread from sparse dots takes far more training than a CPU demo gets (the
demo models drew beige garments with grey spots where the dots were). So the generator first
spreads every hint across the paper around it, stopping at ink lines, as a comic colourist's
flat fill does, and sees that flat colour map beside the sparse hints.

How: on a grid `scale` times coarser than the image (a cell with any ink is a wall, so thin
lines still block), unfilled paper cells repeatedly take the mean colour of their filled
4-neighbours (4, not 8: a diagonal wall would leak diagonally). `steps` bounds the spread, so a
gap in an outline leaks colour only that far; where two colours meet, each keeps its side.
Everything is plain tensor ops, so it runs in training, in the exported TorchScript model and on
any device, and is the same everywhere by construction.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FILL_CHANNELS = 4  # filled colour RGB (0 where unfilled) + filled mask


class HintFill(nn.Module):
    """N x 5 x H x W generator input (edges, hint RGB, hint mask) -> N x 4 x H x W flat fill."""

    def __init__(self, steps: int = 32, scale: int = 4) -> None:
        super().__init__()
        if steps < 0 or scale < 1:
            raise ValueError(f"hint fill needs steps >= 0 and scale >= 1, got {steps}, {scale}")
        self.steps = int(steps)
        self.scale = int(scale)
        cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
        self.register_buffer("cross", cross, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        s = self.scale
        ink = (x[:, 0:1] < 0).to(x.dtype)  # ink is -1, paper +1 (models/inputs.py)
        mask = x[:, 4:5]
        colour_sum = F.avg_pool2d(x[:, 1:4], s)  # hint RGB is already 0 off the hints
        hinted = F.avg_pool2d(mask, s)
        filled = (hinted > 0).to(x.dtype)
        colour = colour_sum / hinted.clamp_min(1e-6) * filled  # mean hint colour per cell
        paper = 1.0 - F.max_pool2d(ink, s)
        for _ in range(self.steps):
            # Sums over the cell and its 4 neighbours; only filled cells carry colour.
            total = self._cross_sum(colour)
            count = self._cross_sum(filled)
            grow = (count > 0).to(x.dtype) * (1.0 - filled) * paper
            colour = colour + grow * total / count.clamp_min(1.0)
            filled = filled + grow
        out = torch.cat([colour, filled], dim=1)
        return F.interpolate(out, size=(height, width), mode="nearest") if s > 1 else out

    def _cross_sum(self, t: torch.Tensor) -> torch.Tensor:
        channels = t.shape[1]
        kernel = self.cross.to(t.dtype).expand(channels, 1, 3, 3)
        return F.conv2d(t, kernel, padding=1, groups=channels)
