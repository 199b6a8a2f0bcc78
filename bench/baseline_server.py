"""The baseline the service is measured against: one fp32 forward pass per request behind a plain
web handler, the way the reference pix2pix demos served their model (a Flask/Starlette route
that decodes the upload, runs `model(x)` under `torch.no_grad()` and returns the PNG).

Same preprocessing as the service (serving/sketches.py: pad square, split ink and hints, resize),
eager PyTorch in fp32 NCHW, no batching, no autocast, no TorchScript. Each request runs in
Starlette's thread pool (as a sync Flask view would run in a threaded server), so concurrent
requests run concurrent forward passes that share the cores.

    python -m bench.baseline_server --port 8100 --weights models/top/best_generator.pt
    python -m bench.baseline_server --port 8100 --ngf 64          # random weights (speed only)

The generator is params.yaml's `model:` (or `--config`, a JSON file of those settings, e.g. a
champion's own) at width `--ngf` when given.

POST /colorize with a multipart `sketch` field -> image/png; GET /ready -> 200 once loaded.
Binds to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_generator(weights: Path | None, cfg: dict, size: int, seed: int = 0):
    """The generator in eval mode, fp32 NCHW: trained weights from a checkpoint, else seeded init."""
    import torch

    from sketch2fashion.models.networks import build_generator

    torch.manual_seed(seed)
    generator = build_generator(cfg, size)
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=False)
        generator.load_state_dict(state["generator"])
    return generator.eval()


def make_app(generator, size: int):
    import numpy as np
    import torch
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from sketch2fashion.imaging.io import decode_rgb, encode_png
    from sketch2fashion.serving.sketches import generator_input, photos_to_uint8, prepare_sketch

    def colorize_png(data: bytes) -> bytes:
        sketch = prepare_sketch(decode_rgb(data), size)
        x = torch.from_numpy(generator_input([sketch.packed]))
        with torch.no_grad():
            y = generator(x)
        return encode_png(photos_to_uint8(np.asarray(y.clamp(-1, 1).numpy()))[0])

    async def colorize(request: Request) -> Response:
        form = await request.form()
        upload = form.get("sketch")
        if upload is None or isinstance(upload, str):
            return Response(b'{"error": "upload the sketch"}', status_code=400, media_type="application/json")
        data = await upload.read()
        png = await run_in_threadpool(colorize_png, data)
        return Response(png, media_type="image/png")

    async def ready(_: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/colorize", colorize, methods=["POST"]),
                             Route("/ready", ready, methods=["GET"])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint with a 'generator' state dict")
    parser.add_argument("--config", type=Path, default=None, help="JSON file of model settings (default: params.yaml)")
    parser.add_argument("--ngf", type=int, default=None, help="override the width")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2)")
    args = parser.parse_args(argv)

    import torch
    import uvicorn

    from sketch2fashion.params import load_params

    torch.set_num_threads(args.threads)
    cfg = json.loads(args.config.read_text()) if args.config else dict(load_params(ROOT / "params.yaml")["model"])
    if args.ngf:
        cfg["ngf"] = args.ngf
    app = make_app(load_generator(args.weights, cfg, args.size), args.size)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
