"""Our batched SSIM / PSNR / L1 must agree with scikit-image, the reference the training issue cites."""
from __future__ import annotations

import numpy as np
import pytest
import torch

skimage_metrics = pytest.importorskip("skimage.metrics")
from skimage.filters import gaussian  # noqa: E402

from sketch2fashion.metrics import l1, psnr, ssim  # noqa: E402

SSIM_TOLERANCE = 1e-3  # the training issue's acceptance bound; we actually agree to ~1e-12


def reference_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255) -> float:
    return float(skimage_metrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        channel_axis=-1 if a.ndim == 3 else None, data_range=data_range,
    ))


def garment_like(size: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured RGB test image: colour gradients, soft blobs and fine noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.6 * xx + 0.2, 0.5 * yy + 0.3 * xx, 0.8 - 0.5 * yy], axis=-1)
    blobs = gaussian(rng.random((size, size, 3)), sigma=size / 16, channel_axis=-1)
    texture = gaussian(rng.random((size, size, 3)), sigma=1.0, channel_axis=-1)
    image = base + 2.0 * (blobs - blobs.mean()) + 0.3 * (texture - 0.5)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def distorted(image: np.ndarray, kind: str, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    as_float = image.astype(np.float64)
    if kind == "identical":
        out = as_float
    elif kind == "noisy":
        out = as_float + rng.normal(0, 15, image.shape)
    elif kind == "blurred":
        out = gaussian(as_float, sigma=2.0, channel_axis=-1, preserve_range=True)
    elif kind == "shifted":  # content moves 3 px right and 2 px down; borders replicate
        out = np.pad(as_float, ((2, 0), (3, 0), (0, 0)), mode="edge")[: image.shape[0], : image.shape[1]]
    elif kind == "colour":  # warmer and desaturated: a plausible wrong-colour garment
        grey = as_float.mean(axis=-1, keepdims=True)
        out = 0.6 * as_float + 0.4 * grey + np.array([25.0, 5.0, -20.0])
    else:
        raise ValueError(kind)
    return np.clip(out, 0, 255).round().astype(np.uint8)


KINDS = ["identical", "noisy", "blurred", "shifted", "colour"]


@pytest.mark.parametrize("size", [64, 256])
@pytest.mark.parametrize("kind", KINDS)
def test_ssim_matches_skimage_on_rgb_pairs(size: int, kind: str) -> None:
    a = garment_like(size)
    b = distorted(a, kind)
    ours = ssim(a, b)
    assert ours.per_image.shape == (1,)
    assert abs(ours.mean - reference_ssim(a, b)) < SSIM_TOLERANCE


def test_ssim_batch_gives_each_pairs_skimage_value() -> None:
    a = garment_like(64, seed=3)
    pairs = [(a, distorted(a, kind)) for kind in KINDS]
    scores = ssim(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    expected = np.array([reference_ssim(x, y) for x, y in pairs])
    np.testing.assert_allclose(scores.per_image.numpy(), expected, atol=1e-9)
    assert scores.mean == pytest.approx(expected.mean(), abs=1e-9)


def test_ssim_of_identical_images_is_one() -> None:
    a = garment_like(64)
    assert ssim(a, a).mean == pytest.approx(1.0, abs=1e-12)


def test_ssim_on_float_tensors_matches_skimage_on_float_arrays() -> None:
    a = garment_like(64)
    b = distorted(a, "noisy")
    a01, b01 = a / 255.0, b / 255.0
    ta = torch.from_numpy(a01).permute(2, 0, 1).float()
    tb = torch.from_numpy(b01).permute(2, 0, 1).float()
    expected = reference_ssim(a01, b01, data_range=1.0)
    assert abs(ssim(ta, tb, data_range=1.0).mean - expected) < SSIM_TOLERANCE
    assert abs(ssim(a, b).mean - expected) < 1e-9  # [0, 1] with range 1 == uint8 with range 255


def test_ssim_on_greyscale_matches_skimage() -> None:
    a = garment_like(64)[..., 1]
    b = distorted(garment_like(64), "blurred")[..., 1]
    assert abs(ssim(a, b).mean - reference_ssim(a, b)) < SSIM_TOLERANCE


@pytest.mark.parametrize("kind", ["noisy", "blurred", "shifted", "colour"])
def test_psnr_matches_skimage(kind: str) -> None:
    a = garment_like(64)
    b = distorted(a, kind)
    expected = skimage_metrics.peak_signal_noise_ratio(a, b, data_range=255)
    assert psnr(a, b).mean == pytest.approx(expected, abs=1e-9)


def test_psnr_of_identical_images_is_infinite() -> None:
    a = garment_like(64)
    assert psnr(a, a).mean == float("inf")


def test_l1_is_fraction_of_data_range() -> None:
    a = np.zeros((16, 16, 3), np.uint8)
    b = np.full((16, 16, 3), 51, np.uint8)
    assert l1(a, b).mean == pytest.approx(0.2)
    t = torch.zeros(2, 3, 16, 16)
    assert l1(t - 1.0, t + 1.0, data_range=2.0).per_image.tolist() == [1.0, 1.0]


def test_float_inputs_need_a_data_range() -> None:
    t = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="data_range"):
        ssim(t, t)


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 15, 3), np.uint8))
