"""The image work of one /colorize request in the API process, step by step (thread CPU ms).

The served benchmark reports the API's CPU per request as one figure; this splits off the part
that is ours (PNG decode of the upload, ink/hint split, encoding the photo) so the rest can be
read as BentoML's HTTP stack. The photo is encoded in both `serving.photo_format`s, as the trained
demo champion draws it and as the full U-Net of `make bench` (seeded random weights) does.

    python bench/api_steps.py --category top --n 16
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generator_modes import load_pyfunc, random_generator  # noqa: E402
from serve_colorize import ROOT, val_sketch_pngs  # noqa: E402

from sketch2fashion.serving.config import load_serving_config  # noqa: E402
from sketch2fashion.serving.requests import decode_image  # noqa: E402
from sketch2fashion.serving.sketches import encode_photo, generator_input, photos_to_uint8, prepare_sketch  # noqa: E402


def thread_ms(step: Callable[[], object], repeats: int) -> float:
    """Median thread CPU ms of `step` over `repeats` calls (after one untimed call)."""
    step()
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        step()
        times.append(1000 * (time.thread_time() - started))
    return statistics.median(times)


def measure(category: str, n: int, repeats: int) -> dict:
    from sketch2fashion.registry.tracking import configure

    config = load_serving_config()
    size = config.image_size
    pngs = val_sketch_pngs(ROOT / "data", category, size, n=n)
    rgbs = [decode_image(p, "sketch", config.limits) for p in pngs]
    prepared = [prepare_sketch(rgb, size) for rgb in rgbs]
    batch = generator_input([p.edges for p in prepared], [p.hint_rgb for p in prepared],
                            [p.hint_mask for p in prepared])
    configure(ROOT)
    champion = photos_to_uint8(load_pyfunc(f"models:/colorizer-{category}@champion", "fp32").predict(batch))
    with torch.inference_mode():
        full = photos_to_uint8(random_generator(64, size).eval()(torch.from_numpy(batch)).numpy())

    def per_item(fn: Callable[[int], object]) -> float:
        return round(statistics.median(thread_ms(lambda i=i: fn(i), repeats) for i in range(n)), 3)

    def encode(photo: np.ndarray, fmt: str) -> bytes:
        return encode_photo(photo, fmt, png_compression=config.png_compression, jpeg_quality=config.jpeg_quality)

    ms = {"decode upload": per_item(lambda i: decode_image(pngs[i], "sketch", config.limits)),
          "prepare (split, resize)": per_item(lambda i: prepare_sketch(rgbs[i], size))}
    photo_bytes = {}
    for fmt in ("png", "jpeg"):
        for who, photos in (("demo champion", champion), ("full U-Net (random weights)", full)):
            ms[f"encode {fmt}, {who}"] = per_item(lambda i: encode(photos[i], fmt))
            photo_bytes[f"{fmt}, {who}"] = int(statistics.median(len(encode(p, fmt)) for p in photos))
    return {"sketches": n, "category": category, "png_compression": config.png_compression,
            "jpeg_quality": config.jpeg_quality, "upload_png_bytes": int(statistics.median(len(p) for p in pngs)),
            "ms": ms, "photo_bytes": photo_bytes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", default="top")
    parser.add_argument("--n", type=int, default=16, help="val sketches (default: 16, as the served benchmark)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per sketch and step")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the API's image work runs in single worker threads
    result = measure(args.category, args.n, args.repeats)
    for step, ms in result["ms"].items():
        print(f"{step:45s} {ms:6.2f} ms")
    for what, size in result["photo_bytes"].items():
        print(f"bytes, {what:39s} {size:7d}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
