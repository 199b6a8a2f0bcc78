"""Training throughput (images/s per pix2pix step) in fp32 vs bf16 autocast, measured in one run.

  python bench/train_step.py --size 256 --ngf 32 --batch 8 --steps 4

Modes alternate in rounds so background load hits both alike; prints the median per mode and
the bf16/fp32 ratio. bf16 uses channels-last (what oneDNN's bf16 kernels want).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from sketch2fashion.colorizer.trainer import Pix2PixTrainer, TrainConfig
from sketch2fashion.models.device import pick_device


def images_per_second(trainer: Pix2PixTrainer, batch: int, size: int, steps: int) -> float:
    x = torch.rand(batch, 5, size, size) * 2 - 1
    y = torch.rand(batch, 3, size, size) * 2 - 1
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(x, y)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--norm", default="instance")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = pick_device(args.device)
    model = {"ngf": args.ngf, "ndf": 64, "depth": "auto", "norm": args.norm}
    trainers = {p: Pix2PixTrainer(model, TrainConfig(precision=p, batch_size=args.batch), args.size, device)
                for p in ("fp32", "bf16")}
    for trainer in trainers.values():  # warm-up: oneDNN / cuDNN pick kernels on the first steps
        images_per_second(trainer, args.batch, args.size, 2)
    rates: dict[str, list[float]] = {p: [] for p in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            rates[name].append(images_per_second(trainer, args.batch, args.size, args.steps))
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"device {device.type}, {args.size}px, ngf {args.ngf}, batch {args.batch}, {args.rounds} rounds")
    for name, value in median.items():
        print(f"  {name:5s} {value:8.2f} img/s  (rounds: {', '.join(f'{v:.2f}' for v in rates[name])})")
    print(f"  bf16/fp32 = {median['bf16'] / median['fp32']:.2f}x")


if __name__ == "__main__":
    main()
