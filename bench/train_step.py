"""Training throughput of the colorizer, against the GEMM ceilings measured beside it.

  python -m bench.train_step                     # params.yaml's colorizer and the pix2pix one it replaced

For each model (params.yaml's `model`/`train` and, for comparison, the earlier demo colorizer:
ngf 32 at full size, transposed convs, Tanh photo, PatchGAN) it times whole training steps at
image.size in fp32 and, where the CPU computes bf16 natively, bf16 autocast; modes and models
alternate in rounds so background load hits all alike. The FLOPs of one step are counted by
torch's FlopCounterMode (forward and backward, discriminator included), so images/s turn into
GFLOP/s and a share of the fp32 / bf16 GEMM ceilings (bench/machine.py) measured in the same run.
The data loader is timed alone on the real training items when data/ exists.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from sketch2fashion.colorizer.trainer import Pix2PixTrainer, TrainConfig
from sketch2fashion.models.device import bf16_supported, pick_device
from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS
from sketch2fashion.params import load_params

EARLIER = {"model": {"ngf": 32, "ndf": 64, "depth": "auto", "norm": "instance", "upsample": "transpose",
                     "output": "image", "work_scale": 1},
           "lambda_gan": 1.0}
"""The demo colorizer before the flat fill (ngf 32, full size, PatchGAN), fed today's 9-channel input."""


def _batch(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(batch, GENERATOR_IN_CHANNELS, size, size) * 2 - 1
    x[:, 8] = (x[:, 8] > 0).float()
    return x, torch.rand(batch, 3, size, size) * 2 - 1


def images_per_second(trainer: Pix2PixTrainer, batch: int, size: int, steps: int) -> float:
    x, y = _batch(batch, size)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(x, y)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def flops_per_image(trainer: Pix2PixTrainer, size: int, batch: int = 2) -> float:
    """FLOPs of one training step per image (forward + backward of G, and of D when it trains)."""
    x, y = _batch(batch, size)
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(x, y)
    return counter.get_total_flops() / batch


def loader_items_per_second(params: dict, data_dir: Path, category: str, items: int = 24) -> float | None:
    """Training items per second from the real data (doodles, hints, fill), one process."""
    if not (data_dir / "manifest.csv").is_file():
        return None
    from sketch2fashion.colorizer.run import ColorizerRun

    dataset = ColorizerRun.prepare(params, data_dir, category).train_set
    count = min(items, len(dataset))
    dataset[0]
    start = time.perf_counter()
    for i in range(count):
        dataset[i]
    return count / (time.perf_counter() - start)


def measure(params: dict, *, batch: int = 8, steps: int = 3, rounds: int = 3, device: str = "auto",
            data_dir: Path = Path("data")) -> dict:
    dev = pick_device(device)
    size = int(params["image"]["size"])
    train = params.get("train") or {}
    configs = {"current": (params.get("model") or {}, float(train.get("lambda_gan", 1.0))),
               "earlier": (EARLIER["model"], EARLIER["lambda_gan"])}
    precisions = ["fp32"] + (["bf16"] if bf16_supported(dev) else [])
    trainers = {(name, p): Pix2PixTrainer(model, TrainConfig(precision=p, batch_size=batch, lambda_gan=gan), size, dev)
                for name, (model, gan) in configs.items() for p in precisions}
    flops = {name: flops_per_image(trainers[(name, "fp32")], size) for name in configs}
    for trainer in trainers.values():  # warm-up: oneDNN picks kernels on the first steps
        images_per_second(trainer, batch, size, 1)
    rates: dict[tuple[str, str], list[float]] = {key: [] for key in trainers}
    for _ in range(rounds):
        for key, trainer in trainers.items():
            rates[key].append(images_per_second(trainer, batch, size, steps))
    rows = []
    for (name, precision), values in rates.items():
        median = statistics.median(values)
        rows.append({"model": name, "precision": precision, "img_per_s": round(median, 3),
                     "img_per_s_rounds": [round(v, 3) for v in values],
                     "gflops_per_image": round(flops[name] / 1e9, 3),
                     "achieved_gflops": round(median * flops[name] / 1e9, 1)})
    current = {r["precision"]: r["img_per_s"] for r in rows if r["model"] == "current"}
    earlier = {r["precision"]: r["img_per_s"] for r in rows if r["model"] == "earlier"}
    loader = loader_items_per_second(params, data_dir, (params.get("categories") or ["top"])[0])
    return {"device": dev.type, "size": size, "batch": batch, "steps_per_round": steps, "rounds": rounds,
            "rows": rows, "current_over_earlier": {p: round(current[p] / earlier[p], 2) for p in current},
            "loader_items_per_s": None if loader is None else round(loader, 1)}


def with_ceilings(result: dict, gemm: dict) -> dict:
    """Each row's achieved GFLOP/s as a share of the GEMM ceiling of its precision."""
    for row in result["rows"]:
        ceiling = gemm.get(f"{row['precision']}_gflops")
        row["share_of_gemm_ceiling"] = round(row["achieved_gflops"] / ceiling, 3) if ceiling else None
    result["gemm"] = gemm
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()

    from bench.machine import gemm_ceiling  # bench/ is on sys.path when this runs as a script

    result = measure(load_params(args.params), batch=args.batch, steps=args.steps, rounds=args.rounds,
                     device=args.device, data_dir=args.data_dir)
    result = with_ceilings(result, gemm_ceiling())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
