"""pix2pix training for one category's colorizer: GAN + lambda*L1, checkpoints, resume.

The loop is deliberately plain (no framework) so a reviewer can read it top to bottom. Epoch
randomness (shuffling, augmentation, dropout) is seeded from (seed, epoch), so a run killed and
resumed from a checkpoint continues exactly as an uninterrupted run would.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from sketch2fashion.colorizer.checkpoint import CheckpointDir, fingerprint, save_atomic
from sketch2fashion.colorizer.dataset import make_loader
from sketch2fashion.colorizer.progress import ProgressFile
from sketch2fashion.models.device import resolve_dtype
from sketch2fashion.models.inputs import photos_to_signed, unpack_sketches
from sketch2fashion.models.networks import build_discriminator, build_generator


@dataclass
class TrainConfig:
    """params.yaml `train:` (the keys below; others there are for the data pipeline)."""

    epochs: int = 20
    batch_size: int = 8
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_l1: float = 100.0
    lambda_gan: float = 1.0  # 0 = no discriminator: plain L1 regression (the CPU demo's choice, see params.yaml)
    eval_every: int = 2
    seed: int = 0
    num_workers: int = 1
    precision: str = "auto"  # auto = bf16 where the hardware has it natively, else fp32
    keep_checkpoints: int = 2

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in section.items() if k in known})


class Pix2PixTrainer:
    """Generator + PatchGAN discriminator and their optimisers, on one device."""

    def __init__(self, model_cfg: dict[str, Any], cfg: TrainConfig, image_size: int,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
        self.dtype = resolve_dtype(device, cfg.precision)
        # channels-last is what oneDNN (CPU bf16) and tensor cores want; NCHW is faster for fp32 CPU.
        self.memory_format = (torch.channels_last if self.dtype != torch.float32 or device.type == "cuda"
                              else torch.contiguous_format)
        self.generator = build_generator(model_cfg, image_size).to(device, memory_format=self.memory_format)
        betas = (cfg.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=betas)
        self.discriminator: nn.Module | None = None
        self.opt_d: torch.optim.Optimizer | None = None
        if cfg.lambda_gan > 0:
            self.discriminator = build_discriminator(model_cfg).to(device, memory_format=self.memory_format)
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=betas)
        self.gan_loss = nn.BCEWithLogitsLoss()
        self.l1_loss = nn.L1Loss()

    def _autocast(self):
        enabled = self.dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, memory_format=self.memory_format, non_blocking=True)

    def train_step(self, sketch: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
        """One pix2pix step: update D on real/fake pairs, then G on fooling D + lambda*L1
        (without a discriminator, `lambda_gan: 0`, only the L1 step)."""
        sketch, photo = self._to_device(sketch), self._to_device(photo)
        losses: dict[str, float] = {}
        with self._autocast():
            fake = self.generator(sketch)
        if self.discriminator is not None:
            with self._autocast():
                # Discriminator: real pairs -> 1, generated pairs -> 0 (fake detached).
                pred_real = self.discriminator(torch.cat([sketch, photo], 1))
                pred_fake = self.discriminator(torch.cat([sketch, fake.detach()], 1))
                loss_d = 0.5 * (self.gan_loss(pred_real.float(), torch.ones_like(pred_real, dtype=torch.float32))
                                + self.gan_loss(pred_fake.float(), torch.zeros_like(pred_fake, dtype=torch.float32)))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            losses["loss_d"] = loss_d.item()
        with self._autocast():
            loss_l1 = self.l1_loss(fake.float(), photo.float())
            loss_g = self.cfg.lambda_l1 * loss_l1
            if self.discriminator is not None:
                pred = self.discriminator(torch.cat([sketch, fake], 1))
                loss_gan = self.gan_loss(pred.float(), torch.ones_like(pred, dtype=torch.float32))
                loss_g = loss_g + self.cfg.lambda_gan * loss_gan
                losses["loss_g_gan"] = loss_gan.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        losses["loss_g_l1"] = loss_l1.item()
        return losses

    def state_dict(self) -> dict[str, Any]:
        state = {"generator": self.generator.state_dict(), "opt_g": self.opt_g.state_dict()}
        if self.discriminator is not None:
            state.update(discriminator=self.discriminator.state_dict(), opt_d=self.opt_d.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["opt_d"])


Evaluate = Callable[[nn.Module], dict[str, float]]
OnEval = Callable[[int, dict[str, float], bool], None]


def fit(
    trainer: Pix2PixTrainer,
    train_set: Any,
    evaluate: Evaluate,
    out_dir: Path,
    *,
    config_id: str,
    resume: bool = True,
    on_eval: OnEval | None = None,
    extra_state: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    progress: ProgressFile | None = None,
) -> list[dict[str, float]]:
    """Train for `cfg.epochs`, evaluating and checkpointing every `eval_every` epochs (and last).

    `evaluate(generator)` returns validation metrics including "ssim"; the best-SSIM generator is
    kept as `out_dir/best_generator.pt`. With `resume`, training continues after the newest
    checkpoint made with the same `config_id`; the returned history covers every evaluated epoch
    exactly once, however many times the run was interrupted. `extra_state` (e.g. the MLflow
    run id) is stored in checkpoints and returned via `resumed_state(out_dir)`. `progress`, when
    given, is kept up to date for a service that shows how far training has come.
    """
    cfg = trainer.cfg
    checkpoints = CheckpointDir(out_dir / "checkpoints", keep=cfg.keep_checkpoints)
    history: list[dict[str, float]] = []
    start = 1
    latest = checkpoints.latest() if resume else None
    if latest is not None and latest.get("config_id") == config_id:
        trainer.load_state_dict(latest["trainer"])
        history = list(latest["history"])
        start = int(latest["epoch"]) + 1
        log(f"resuming after epoch {latest['epoch']} from {checkpoints.folder}")
    elif latest is not None:
        log("checkpoints were made with another configuration; starting over")
        checkpoints.clear()
    elif not resume:
        checkpoints.clear()
    best = max((row["ssim"] for row in history), default=float("-inf"))

    for epoch in range(start, cfg.epochs + 1):
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout and the shuffle order
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        loader = make_loader(train_set, cfg.batch_size, shuffle=True, num_workers=cfg.num_workers,
                             seed=cfg.seed * 7919 + epoch, drop_last=len(train_set) > cfg.batch_size)
        trainer.generator.train()
        if trainer.discriminator is not None:
            trainer.discriminator.train()
        sums: dict[str, float] = {}
        seen, started = 0, time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False, mininterval=1.0)
        for step, batch in enumerate(bar, start=1):
            losses = trainer.train_step(unpack_sketches(batch["sketch"]), photos_to_signed(batch["photo"]))
            n = batch["sketch"].shape[0]
            seen += n
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value * n
            rate = seen / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(l1=f"{losses['loss_g_l1']:.3f}", img_s=f"{rate:.1f}")
            if progress is not None:
                progress.update(epoch=epoch, step=step, steps=len(loader), images_per_s=rate)
        seconds = time.perf_counter() - started
        if epoch % cfg.eval_every and epoch != cfg.epochs:
            continue
        row = {"epoch": epoch, **{k: v / max(seen, 1) for k, v in sums.items()},
               "train_images_per_s": seen / max(seconds, 1e-9)}
        row.update(evaluate(trainer.generator))
        trainer.generator.train()
        history.append(row)
        improved = row["ssim"] > best
        if improved:
            best = row["ssim"]
            save_atomic({"generator": trainer.generator.state_dict(), "epoch": epoch, "metrics": row},
                        out_dir / "best_generator.pt")
        log(f"epoch {epoch}: ssim {row['ssim']:.4f} psnr {row.get('psnr', float('nan')):.2f}"
            f"{' (best)' if improved else ''}")
        if on_eval is not None:  # before the checkpoint: a crash in between repeats, never loses, a log
            on_eval(epoch, row, improved)
        checkpoints.save(epoch, {"trainer": trainer.state_dict(), "history": history,
                                 "config_id": config_id, **(extra_state or {})})
    if progress is not None:
        progress.finish()
    return history


def resumed_state(out_dir: Path) -> dict[str, Any]:
    """The newest checkpoint's stored extras (e.g. mlflow_run_id), or {} when there is none."""
    latest = CheckpointDir(out_dir / "checkpoints").latest()
    return latest or {}


def config_id_for(*parts: Any) -> str:
    return fingerprint(*parts)


__all__ = ["TrainConfig", "Pix2PixTrainer", "fit", "resumed_state", "config_id_for"]
