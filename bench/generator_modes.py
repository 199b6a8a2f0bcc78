"""The generator in every way it can run here, timed in one run, and scored on the val split.

Two generators at 256 px:

- the demo champion (`models:/colorizer-<cat>@champion`, ngf 32, trained), and
- the full pix2pix U-Net (ngf 64, the paper's size) with seeded random weights: speed only.

Modes (eager code paths plus the exported model):

    fp32      eager NCHW fp32                   bf16      eager NCHW, bf16 autocast
    cl+fp32   eager channels-last fp32          cl+bf16   eager channels-last, bf16 autocast
    export-fp32    the registered MLflow pyfunc (torch.export program), dtype fp32, uncompiled
    export-bf16    the same, dtype bf16 (what `serving.dtype: auto` picks on a CPU with AVX512-BF16)
    compiled-bf16  the same, bf16, torch.compile'd at load (what `serving.compile: auto` adds where
                   a C++ compiler is present), compiled for exactly the batch sizes timed

The pyfunc modes time `pyfunc.predict(numpy)`: the whole served call, with the float32
conversion and clamp. Every mode of a batch size is warmed up on that shape, then timed in
interleaved rounds (`bench_runners`); the median and best round are kept.

    python -m bench.generator_modes --batch 1 8 32 --out /tmp/generator.json
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS

ROOT = Path(__file__).resolve().parents[1]
EAGER_MODES = ("fp32", "bf16", "cl+fp32", "cl+bf16")


@dataclass(frozen=True)
class Mode:
    name: str
    dtype: torch.dtype
    channels_last: bool


MODES = {
    "fp32": Mode("fp32", torch.float32, channels_last=False),
    "bf16": Mode("bf16", torch.bfloat16, channels_last=False),
    "cl+fp32": Mode("cl+fp32", torch.float32, channels_last=True),
    "cl+bf16": Mode("cl+bf16", torch.bfloat16, channels_last=True),
}


@contextlib.contextmanager
def precision(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    if dtype == torch.float32:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_image(model: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x[:1])
    return float(counter.get_total_flops())


def prepared(model: torch.nn.Module, x: torch.Tensor, mode: Mode) -> tuple[torch.nn.Module, torch.Tensor]:
    """A copy of the model and input in the mode's memory layout (the weights' layout matters too)."""
    fmt = torch.channels_last if mode.channels_last else torch.contiguous_format
    return copy.deepcopy(model).to(memory_format=fmt), x.contiguous(memory_format=fmt)


def time_runner(run: Callable[[], object], batch: int, seconds: float,
                device: torch.device | None = None) -> tuple[float, int, float]:
    """Images/s of `run()` (one forward pass of `batch` images) over about `seconds`, the pass
    count, and the cores this process kept busy meanwhile (CPU seconds / wall seconds)."""
    synchronize(device or torch.device("cpu"))
    iterations, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while iterations < 1 or time.perf_counter() - start < seconds:
        run()
        iterations += 1
    synchronize(device or torch.device("cpu"))
    wall = time.perf_counter() - start
    return iterations * batch / wall, iterations, (time.process_time() - cpu_start) / wall


def bench_runners(runners: dict[str, Callable[[], object]], batch: int, seconds: float, warmup: int,
                  rounds: int, device: torch.device | None = None) -> dict[str, tuple[list[float], int, list[float]]]:
    """Per runner: the images/s of each round, the total pass count and the cores busy in each
    round, runners interleaved per round.

    Each runner is warmed up on this batch shape first (oneDNN builds its primitives per shape),
    then every round times each runner for seconds / rounds (at least one pass), so load from
    other processes on a shared machine hits every runner alike.
    """
    for run in runners.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    cores: dict[str, list[float]] = {name: [] for name in runners}
    passes = dict.fromkeys(samples, 0)
    for _ in range(rounds):
        for name, run in runners.items():
            rate, iterations, busy = time_runner(run, batch, seconds / rounds, device)
            samples[name].append(rate)
            cores[name].append(busy)
            passes[name] += iterations
    return {name: (samples[name], passes[name], cores[name]) for name in samples}


def mode_runner(model: torch.nn.Module, x: torch.Tensor, mode: Mode, device: torch.device) -> Callable[[], object]:
    """One eval forward pass of `model` on `x` in `mode` (layout, precision, inference mode)."""
    net, inp = prepared(model, x, mode)

    def run() -> object:
        with torch.inference_mode(), precision(device, mode.dtype):
            return net(inp)

    return run

SERVED_MODES = {"export-fp32": ("fp32", "off"), "export-bf16": ("bf16", "off"), "compiled-bf16": ("bf16", "on")}
"""pyfunc mode -> (dtype, compile) as the Colorizer would load it."""
ALL_MODES = (*EAGER_MODES, *SERVED_MODES)
MODE_DTYPE = {"fp32": "fp32", "bf16": "bf16", "cl+fp32": "fp32", "cl+bf16": "bf16", "export-fp32": "fp32",
              "export-bf16": "bf16", "compiled-bf16": "bf16"}


def model_config(ngf: int) -> dict:
    """params.yaml's `model:` (the project's generator as it is defined now) at width `ngf`."""
    from sketch2fashion.params import load_params

    return {**dict(load_params(ROOT / "params.yaml")["model"]), "ngf": ngf}


def random_generator(ngf: int, size: int, seed: int = 0, cfg: dict | None = None) -> nn.Module:
    """A seeded, pix2pix-initialised generator (the baseline server builds the same one)."""
    from sketch2fashion.models.networks import build_generator

    torch.manual_seed(seed)
    return build_generator({**(cfg or model_config(ngf)), "ngf": ngf}, size).eval()


def champion_model_config(pyfunc_model) -> dict:
    """The `model:` settings the registered generator was trained with (its colorizer.json)."""
    return dict(pyfunc_model.unwrap_python_model().config.get("model") or {})


def champion_ngf(pyfunc_model) -> int:
    return int(champion_model_config(pyfunc_model).get("ngf", 64))


def champion_checkpoint(category: str) -> Path:
    """The champion's eager weights: the `checkpoint/best_generator.pt` its training run logged."""
    import mlflow

    from sketch2fashion.registry.promotion import champion
    from sketch2fashion.registry.tracking import configure

    version = champion(configure(ROOT), category)
    if version is None:
        raise LookupError(f"no champion for {category}")
    run_id = version.run_id or version.tags.get("run_id")
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoint/best_generator.pt"))


def eager_generator(weights: Path, size: int, cfg: dict) -> nn.Module:
    from sketch2fashion.models.networks import build_generator

    generator = build_generator(cfg, size)
    state = torch.load(weights, map_location="cpu", weights_only=False)
    generator.load_state_dict(state["generator"])
    return generator.eval()


def load_pyfunc(uri: str, dtype: str, compile: str = "off", batch_sizes: list[int] | None = None):
    import mlflow

    config = {"device": "cpu", "dtype": dtype, "compile": compile}
    if batch_sizes:
        config["batch_sizes"] = list(batch_sizes)
    return mlflow.pyfunc.load_model(uri, model_config=config)


def served_pyfuncs(uri: str, modes, batch_sizes: list[int] | None = None) -> dict[str, object]:
    """The pyfunc modes among `modes`, loaded (compiled ones for `batch_sizes`, else as served)."""
    return {name: load_pyfunc(uri, *SERVED_MODES[name], batch_sizes=batch_sizes)
            for name in modes if name in SERVED_MODES}


def served_mode() -> dict:
    """The mode the service runs with this project's `serving:` settings (dtype and compile: auto),
    resolved the way ColorizerModel.load_context resolves them."""
    from sketch2fashion.models.device import pick_device, resolve_dtype
    from sketch2fashion.registry.compiled import wants_compile
    from sketch2fashion.serving.config import load_serving_config

    config = load_serving_config(ROOT)
    device = pick_device(config.device)
    dtype = str(resolve_dtype(device, config.dtype)).replace("torch.", "")
    compiled, why = wants_compile(config.compile, device)
    short = "bf16" if dtype == "bfloat16" else "fp32"
    return {"serving.dtype": config.dtype, "serving.compile": config.compile, "resolves_to": dtype,
            "compiled": compiled, "why": why, "mode": f"compiled-{short}" if compiled else f"export-{short}"}


def serving_batch_sizes() -> tuple[int, ...]:
    from sketch2fashion.serving.config import load_serving_config

    return load_serving_config(ROOT).compile_batch_sizes


def runners_for(eager: nn.Module, pyfuncs: dict[str, object], x: torch.Tensor,
                modes: list[str]) -> dict[str, Callable[[], object]]:
    cpu = torch.device("cpu")
    out: dict[str, Callable[[], object]] = {}
    x_np = x.numpy()
    for name in modes:
        if name in SERVED_MODES:
            model = pyfuncs[name]
            out[name] = (lambda m: lambda: m.predict(x_np))(model)
        else:
            out[name] = mode_runner(eager, x, MODES[name], cpu)
    return out


def time_modes(eager: nn.Module, pyfuncs: dict[str, object], size: int, batches: list[int], modes: list[str],
               seconds: float, rounds: int, warmup: int, flops: float, peaks: dict[str, float],
               log: Callable[[str], None] = print) -> list[dict]:
    """One row per (mode, batch): median and best img/s over interleaved rounds, GFLOP/s, peak fraction."""
    rows = []
    torch.manual_seed(1)
    for batch in batches:
        x = torch.rand(batch, GENERATOR_IN_CHANNELS, size, size) * 2 - 1
        x[:, 4] = (x[:, 4] > 0.9).float()
        timings = bench_runners(runners_for(eager, pyfuncs, x, modes), batch, seconds, warmup, rounds)
        for name, (samples, passes, cores) in timings.items():
            median = statistics.median(samples)
            gflops = median * flops / 1e9
            peak = peaks.get(MODE_DTYPE[name])
            rows.append({"mode": name, "batch": batch, "passes": passes, "img_per_s": round(median, 3),
                         "img_per_s_best": round(max(samples), 3), "img_per_s_min": round(min(samples), 3),
                         "ms_per_img": round(1000 / median, 2), "ms_per_batch": round(1000 * batch / median, 1),
                         "gflop_per_s": round(gflops, 2),
                         "peak_fraction": round(gflops / peak, 4) if peak else None,
                         "cores_busy": round(statistics.median(cores), 2)})
            log(f"  {name:8s} batch {batch:3d}: {median:7.2f} img/s (rounds {min(samples):.2f}-{max(samples):.2f}, "
                f"{passes} passes) {gflops:6.1f} GFLOP/s")
    return rows


# --- SSIM of each mode on the val split ---------------------------------------------------------

class _Items(torch.utils.data.Dataset):
    """Pre-built evaluation items (the hints are simulated once, not once per mode)."""

    train = False

    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class _ModeModule(nn.Module):
    """evaluate_generator drives an nn.Module; this one runs a fixed mode itself (no parameters)."""

    def __init__(self, run: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self._run = run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x).float()


def mode_callable(name: str, eager: nn.Module | None, pyfuncs: dict[str, object]) -> Callable[[torch.Tensor], torch.Tensor]:
    if name in SERVED_MODES:
        model = pyfuncs[name]
        return lambda x: torch.from_numpy(np.asarray(model.predict(x.contiguous().numpy())))
    mode = MODES[name]
    net, _ = prepared(eager, torch.zeros(1, GENERATOR_IN_CHANNELS, 8, 8), mode)
    fmt = torch.channels_last if mode.channels_last else torch.contiguous_format

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), precision(torch.device("cpu"), mode.dtype):
            return net(x.contiguous(memory_format=fmt))

    return run


def val_items(category: str, size: int) -> _Items:
    from sketch2fashion.colorizer import ColorizerDataset
    from sketch2fashion.params import load_params

    params = load_params(ROOT / "params.yaml")
    dataset = ColorizerDataset(ROOT / "data", category, "val", size=size, train=False,
                               hint_params=params.get("hints") or {},
                               seed=int((params.get("train") or {}).get("seed", 0)))
    return _Items([dataset[i] for i in range(len(dataset))])


def ssim_by_mode(categories: list[str], size: int, modes: list[str], log: Callable[[str], None] = print) -> dict:
    """Mean val SSIM per mode over the categories' val items (each category by its own champion).

    Eager modes load the checkpoint the champion's training run logged to MLflow, with the
    champion's own model settings; it is checked to be the champion (same output as the
    registry's exported fp32 within 1e-3) and reported if not. Compiled modes are compiled for
    the batch sizes the service compiles (`serving.compile_batch_sizes`), so their SSIM is what
    the service returns.
    """
    from sketch2fashion.colorizer.evaluate import evaluate_generator
    from sketch2fashion.models.inputs import unpack_sketches
    from sketch2fashion.registry.promotion import registered_model_name

    totals = dict.fromkeys(modes, 0.0)
    n_total = 0
    per_category = {}
    weights_match = {}
    for category in categories:
        uri = f"models:/{registered_model_name(category)}@champion"
        pyfuncs = served_pyfuncs(uri, modes, list(serving_batch_sizes()))
        reference = load_pyfunc(uri, "fp32")
        eager = eager_generator(champion_checkpoint(category), size, champion_model_config(reference))
        items = val_items(category, size)
        probe = unpack_sketches(torch.stack([items[i]["sketch"] for i in range(min(4, len(items)))]))
        with torch.inference_mode():
            eager_out = eager(probe).numpy()
        ts_out = reference.predict(probe.numpy())
        diff = float(np.abs(np.clip(eager_out, -1, 1) - ts_out).max())
        weights_match[category] = {"max_abs_diff_fp32": round(diff, 6), "match": diff < 1e-3}
        scores = {}
        for name in modes:
            module = _ModeModule(mode_callable(name, eager, pyfuncs))
            result = evaluate_generator(module, items, device="cpu", batch_size=16, autocast=False)
            scores[name] = round(result["ssim"], 6)
            totals[name] += result["ssim"] * result["n"]
        n = len(items)
        n_total += n
        per_category[category] = {"n": n, **scores}
        log(f"  ssim {category} (n={n}): " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    mean = {name: round(totals[name] / n_total, 6) for name in modes}
    return {"n": n_total, "mean": mean, "per_category": per_category, "eager_weights_are_champion": weights_match,
            "delta_vs_fp32": {name: round(mean[name] - mean["fp32"], 6) for name in modes} if "fp32" in mean else {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", default="top")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--modes", nargs="+", default=list(ALL_MODES), choices=ALL_MODES)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from sketch2fashion.registry.promotion import registered_model_name
    from sketch2fashion.registry.tracking import configure

    configure(ROOT)
    size = 256
    uri = f"models:/{registered_model_name(args.category)}@champion"
    pyfuncs = served_pyfuncs(uri, args.modes, args.batch)
    eager = eager_generator(champion_checkpoint(args.category), size, champion_model_config(load_pyfunc(uri, "fp32")))
    flops = flops_per_image(eager, torch.zeros(1, GENERATOR_IN_CHANNELS, size, size))
    rows = time_modes(eager, pyfuncs, size, args.batch, args.modes, args.seconds, args.rounds, 1, flops, {})
    if args.out:
        args.out.write_text(json.dumps({"flops_per_image": flops, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
