"""Batched SSIM, PSNR and L1 in torch, numerically matching scikit-image.

Evaluation scores thousands of generated photos per run, so a per-image NumPy loop would dominate;
these run on whole batches (CPU or GPU). SSIM follows
`skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, channel_axis=-1, data_range=...)`: an 11x11 Gaussian window
(radius int(3.5 * sigma + 0.5) = 5, the truncation scikit-image uses), K1 = 0.01, K2 = 0.03,
population covariances, the SSIM map cropped by (win_size - 1) // 2 = 5 pixels on every side before
averaging, and RGB channels averaged with equal weight. Because exactly the pixels whose window
touches the border are cropped, scikit-image's reflect padding never reaches the mean: a 'valid'
convolution gives the same number (agreement ~1e-12 in float64, checked in tests).

Inputs: uint8 NumPy images (H x W, H x W x C, or N x H x W x C; data_range defaults to 255),
float NumPy arrays in the same layouts, or float tensors (H x W, C x H x W, N x C x H x W), where
data_range must be given. SSIM is not shift-invariant (its C1/C2 terms use absolute means), so
score generator outputs as uint8 (`models.inputs.to_images`) or as (x + 1) / 2 with
data_range=1.0, never as [-1, 1] values, if the numbers are to be comparable with photo scores.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ImageBatch = np.ndarray | torch.Tensor | Sequence[np.ndarray]

SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
GAUSSIAN_TRUNCATE = 3.5  # scikit-image's (and scipy.ndimage's) window radius = int(3.5 * sigma + 0.5)
CHUNK = 16  # images per SSIM pass: float64 statistics of 16 RGB 256 px images take ~125 MB


@dataclass(frozen=True)
class Scores:
    """Per-image values (float64, shape N, on the inputs' device) and their mean as a float."""

    per_image: torch.Tensor
    mean: float

    @classmethod
    def of(cls, per_image: torch.Tensor) -> Scores:
        return cls(per_image=per_image, mean=float(per_image.mean()))


def ssim(a: ImageBatch, b: ImageBatch, data_range: float | None = None,
         sigma: float = SSIM_SIGMA, k1: float = SSIM_K1, k2: float = SSIM_K2) -> Scores:
    """Mean structural similarity per image (1.0 for identical images)."""
    x, y, data_range = _paired(a, b, data_range)
    window = _gaussian_window(sigma, x.dtype, x.device)
    size = window.numel()
    if x.shape[-1] < size or x.shape[-2] < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size} pixels, got {tuple(x.shape[-2:])}")
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    per_image = torch.cat([
        _ssim_chunk(x[i:i + CHUNK], y[i:i + CHUNK], window, c1, c2) for i in range(0, x.shape[0], CHUNK)
    ])
    return Scores.of(per_image)


def psnr(a: ImageBatch, b: ImageBatch, data_range: float | None = None) -> Scores:
    """Peak signal-to-noise ratio per image in dB; +inf for identical images (as scikit-image)."""
    x, y, data_range = _paired(a, b, data_range)
    mse = (x - y).square().flatten(1).mean(dim=1)
    return Scores.of(10.0 * torch.log10(data_range**2 / mse))  # mse 0 -> +inf, no warning


def l1(a: ImageBatch, b: ImageBatch, data_range: float | None = None) -> Scores:
    """Mean absolute error per image as a fraction of data_range (0 = identical, 1 = opposite).

    On images in [-1, 1] the training L1 loss equals 2x this value.
    """
    x, y, data_range = _paired(a, b, data_range)
    return Scores.of((x - y).abs().flatten(1).mean(dim=1) / data_range)


def _ssim_chunk(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, c1: float, c2: float) -> torch.Tensor:
    channels = x.shape[1]
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(channels, dim=1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(1).mean(dim=1)


def _blur(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian 'valid' filtering of every channel independently."""
    channels = images.shape[1]
    size = window.numel()
    rows = window.view(1, 1, size, 1).expand(channels, 1, size, 1)
    cols = window.view(1, 1, 1, size).expand(channels, 1, 1, size)
    return F.conv2d(F.conv2d(images, rows, groups=channels), cols, groups=channels)


def _gaussian_window(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _paired(a: ImageBatch, b: ImageBatch, data_range: float | None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Both inputs as float64 N x C x H x W on one device, plus the data range to use."""
    x, x_is_u8 = _as_batch(a)
    y, y_is_u8 = _as_batch(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)} (as N x C x H x W)")
    if data_range is None:
        if not (x_is_u8 and y_is_u8):
            raise ValueError("data_range is required for float images (e.g. 1.0 for [0, 1], 2.0 for [-1, 1])")
        data_range = 255.0
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    return x, y.to(x.device), float(data_range)


def _as_batch(images: ImageBatch) -> tuple[torch.Tensor, bool]:
    """NumPy H x W / H x W x C / N x H x W x C or tensor H x W / C x H x W / N x C x H x W -> float64 NCHW."""
    if isinstance(images, torch.Tensor):
        is_u8 = images.dtype == torch.uint8
        tensor = images.detach().to(torch.float64)
        if tensor.dim() == 2:
            tensor = tensor[None, None]
        elif tensor.dim() == 3:
            tensor = tensor[None]
        elif tensor.dim() != 4:
            raise ValueError(f"tensor images must be H x W, C x H x W or N x C x H x W, got {tuple(images.shape)}")
        return tensor, is_u8
    array = images if isinstance(images, np.ndarray) else np.stack([np.asarray(i) for i in images])
    is_u8 = array.dtype == np.uint8
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[None]
    elif array.ndim != 4:
        raise ValueError(f"NumPy images must be H x W, H x W x C or N x H x W x C, got {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array)).to(torch.float64).permute(0, 3, 1, 2), is_u8
