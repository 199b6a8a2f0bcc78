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


def measure(*, size: int = 256, ngf: int = 32, norm: str = "instance", batch: int = 8, steps: int = 4,
            rounds: int = 3, device: str = "auto") -> dict:
    """Median (and per-round) training images/s in fp32 and bf16, modes alternating per round."""
    dev = pick_device(device)
    model = {"ngf": ngf, "ndf": 64, "depth": "auto", "norm": norm}
    trainers = {p: Pix2PixTrainer(model, TrainConfig(precision=p, batch_size=batch), size, dev)
                for p in ("fp32", "bf16")}
    for trainer in trainers.values():  # warm-up: oneDNN / cuDNN pick kernels on the first steps
        images_per_second(trainer, batch, size, 2)
    rates: dict[str, list[float]] = {p: [] for p in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            rates[name].append(images_per_second(trainer, batch, size, steps))
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {"device": dev.type, "size": size, "ngf": ngf, "norm": norm, "batch": batch, "steps_per_round": steps,
            "rounds": rounds,
            "img_per_s": {name: round(v, 3) for name, v in median.items()},
            "img_per_s_rounds": {name: [round(v, 3) for v in values] for name, values in rates.items()},
            "bf16_over_fp32": round(median["bf16"] / median["fp32"], 3)}


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

    result = measure(size=args.size, ngf=args.ngf, norm=args.norm, batch=args.batch, steps=args.steps,
                     rounds=args.rounds, device=args.device)
    print(f"device {result['device']}, {args.size}px, ngf {args.ngf}, batch {args.batch}, {args.rounds} rounds")
    for name, value in result["img_per_s"].items():
        print(f"  {name:5s} {value:8.2f} img/s  (rounds: {', '.join(f'{v:.2f}' for v in result['img_per_s_rounds'][name])})")
    print(f"  bf16/fp32 = {result['bf16_over_fp32']:.2f}x")


if __name__ == "__main__":
    main()
