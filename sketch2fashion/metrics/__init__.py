"""Evaluation metrics: image quality of generated photos against the real ones."""
from sketch2fashion.metrics.image_quality import Scores, l1, psnr, ssim

__all__ = ["Scores", "l1", "psnr", "ssim"]
