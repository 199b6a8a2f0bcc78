"""The served generator's three forms, timed in one run: uncompiled, in-process torch.compile, and the
AOTInductor packages serving uses (registry/aot_compile.py), plus what building and loading cost.

Two seeded random generators at 256 px (weights do not change the speed): the project's
generator as params.yaml `model:` defines it (the demo's), and the paper's full U-Net (ngf 64,
transpose decoder, plain image output). Each form is timed at batch 1 and 8 in interleaved
rounds (best of `--rounds`), in the precision `serving.dtype: auto` picks on this machine
(or `--dtype`).

    python bench/compiled_runner.py --out bench/compiled-runner.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sketch2fashion.demo_run import cpu_name  # noqa: E402
from sketch2fashion.models.device import inference_autocast, resolve_dtype  # noqa: E402
from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS, build_generator  # noqa: E402
from sketch2fashion.params import load_params  # noqa: E402
from sketch2fashion.registry.aot_compile import ensure_packages  # noqa: E402
from sketch2fashion.registry.colorizer_model import export_program  # noqa: E402
from sketch2fashion.registry.compiled import load_compiled_generator  # noqa: E402

SIZE = 256
BATCHES = (1, 8)
CPU = torch.device("cpu")


def generators() -> dict[str, dict]:
    demo = dict(load_params(ROOT / "params.yaml")["model"])
    full = {**demo, "ngf": 64, "work_scale": 1, "upsample": "transpose", "output": "image"}
    return {"demo": demo, "full U-Net": full}


def best_ms(call, x: torch.Tensor, rounds: int, calls: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            call(x)
        best = min(best, (time.perf_counter() - started) / calls)
    return round(1000 * best, 2)


def measure(name: str, cfg: dict, dtype: torch.dtype, rounds: int, work: Path) -> dict:
    torch.manual_seed(0)
    generator = build_generator(cfg, SIZE).eval()
    path = export_program(generator, torch.zeros(1, GENERATOR_IN_CHANNELS, SIZE, SIZE), work / f"{name}.pt2")
    module = torch.export.load(str(path)).module().to(memory_format=torch.channels_last)

    def eager(x):
        with torch.inference_mode(), inference_autocast(CPU, dtype):
            return module(x)

    started = time.perf_counter()
    packages = ensure_packages(path, batch_sizes=BATCHES, dtype=dtype, device=CPU, image_size=SIZE,
                               in_channels=GENERATOR_IN_CHANNELS, cache=work / "cache")
    build_s = time.perf_counter() - started
    example = torch.zeros(1, GENERATOR_IN_CHANNELS, SIZE, SIZE)
    started = time.perf_counter()
    packaged = load_compiled_generator(packages, CPU, example)
    load_s = time.perf_counter() - started

    import torch._inductor.config as inductor_config

    jit = torch.compile(module, dynamic=False)
    started = time.perf_counter()
    with inductor_config.patch({"freezing": True}):
        for batch in BATCHES:
            with torch.no_grad(), inference_autocast(CPU, dtype):
                jit(torch.zeros(batch, GENERATOR_IN_CHANNELS, SIZE, SIZE).contiguous(memory_format=torch.channels_last))
    jit_s = time.perf_counter() - started

    def jitted(x):
        with torch.no_grad(), inference_autocast(CPU, dtype):
            return jit(x)

    row = {"generator": name, "ngf": cfg["ngf"], "build_packages_s": round(build_s, 1),
           "load_packages_s": round(load_s, 3), "torch_compile_in_process_s": round(jit_s, 1)}
    for batch in BATCHES:
        x = torch.rand(batch, GENERATOR_IN_CHANNELS, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
        forms = {"uncompiled": eager, "torch.compile": jitted, "aot packages": packaged}
        for call in forms.values():
            call(x)
        calls = 8 if batch == 1 else 2
        times = {form: [] for form in forms}
        for _ in range(rounds):  # interleaved: a noisy neighbour hits every form alike
            for form, call in forms.items():
                times[form].append(best_ms(call, x, 1, calls))
        for form, samples in times.items():
            row[f"{form} b{batch} ms"] = min(samples)
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per form (best kept)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"],
                        help="precision (auto: what serving.dtype auto picks on this machine)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    dtype = resolve_dtype(CPU, args.dtype)
    with tempfile.TemporaryDirectory(prefix="s2f-compiled-") as tmp:
        rows = [measure(name, cfg, dtype, args.rounds, Path(tmp)) for name, cfg in generators().items()]
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_name(),
              "torch": torch.__version__, "dtype": str(dtype).removeprefix("torch."), "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
