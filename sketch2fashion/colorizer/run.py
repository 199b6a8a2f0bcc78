"""One category's colorizer training, assembled from params.yaml: data, trainer, evaluation.

The DVC stage (`training/train.py`, which adds MLflow tracking) and plain scripts such as the
GPU real-photo run (`bench/train_real_photos.py`) share this, so they train the same way.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sketch2fashion.colorizer.augment import augment_from_params
from sketch2fashion.colorizer.dataset import ColorizerDataset
from sketch2fashion.colorizer.doodle import doodle_from_params
from sketch2fashion.colorizer.evaluate import evaluate_generator
from sketch2fashion.colorizer.progress import ProgressFile
from sketch2fashion.colorizer.trainer import OnEval, Pix2PixTrainer, TrainConfig, config_id_for, fit
from sketch2fashion.models.device import pick_device


@dataclass
class ColorizerRun:
    category: str
    image_size: int
    config: TrainConfig
    device: torch.device
    train_set: ColorizerDataset
    val_set: ColorizerDataset
    doodle_val_set: ColorizerDataset
    trainer: Pix2PixTrainer
    config_id: str

    @classmethod
    def prepare(cls, params: dict[str, Any], data_dir: Path, category: str, *, data_hash: str = "",
                device: str | None = None) -> ColorizerRun:
        """Build datasets and networks; `config_id` changes whenever data or settings do."""
        size = int(params["image"]["size"])
        section = dict(params.get("train") or {})
        cfg = TrainConfig.from_params(section)
        hint_params = params.get("hints") or {}
        share, style = doodle_from_params(section.get("doodle"))
        train_set = ColorizerDataset(data_dir, category, "train", size=size, train=True, hint_params=hint_params,
                                     augment=augment_from_params(section.get("augment")), seed=cfg.seed,
                                     doodle_share=share, doodle_style=style)
        val_set = ColorizerDataset(data_dir, category, "val", size=size, train=False,
                                   hint_params=hint_params, seed=cfg.seed)
        doodle_val_set = ColorizerDataset(data_dir, category, "val", size=size, train=False,
                                          hint_params=hint_params, seed=cfg.seed, doodles=True)
        where = pick_device(device or str(section.get("device", "auto")))
        trainer = Pix2PixTrainer(params.get("model") or {}, cfg, size, where)
        config_id = config_id_for(params.get("model"), section, size, hint_params, data_hash)
        return cls(category, size, cfg, where, train_set, val_set, doodle_val_set, trainer, config_id)

    def evaluate(self, generator: nn.Module) -> dict[str, float]:
        """Val SSIM/PSNR/L1 and colour errors over the whole split, fixed-seed hints, serving
        precision; then the same on the split's doodles (keys prefixed `doodle_`)."""
        batch = max(self.config.batch_size, 8)
        scores = evaluate_generator(generator, self.val_set, device=self.device, batch_size=batch)
        doodles = evaluate_generator(generator, self.doodle_val_set, device=self.device, batch_size=batch)
        return {**scores, **{f"doodle_{k}": v for k, v in doodles.items() if k != "n"}}

    def fit(self, out_dir: Path, *, resume: bool = True, on_eval: OnEval | None = None,
            extra_state: dict[str, Any] | None = None, log: Callable[[str], None] = print,
            progress: ProgressFile | None = None) -> list[dict[str, float]]:
        return fit(self.trainer, self.train_set, self.evaluate, out_dir, config_id=self.config_id,
                   resume=resume, on_eval=on_eval, extra_state=extra_state, log=log, progress=progress)

    def describe(self) -> str:
        return (f"{self.category}: {len(self.train_set)} train / {len(self.val_set)} val images, "
                f"{self.image_size}px, {self.device.type} {self.trainer.dtype}")
