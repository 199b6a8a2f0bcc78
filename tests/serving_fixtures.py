"""A tiny real project for the serving tests, and a real `bentoml serve` process on it.

`make_project` writes a scratch project: params.yaml (64 px images, ngf 8, two categories,
small request limits, a 1 s registry poll), a SQLite MLflow registry with a champion per
category, and a published catalog index of a few demo products (untrained encoder: the tests
check the plumbing, not the ranking). `BentoServer` starts `bentoml serve service:API` from the
repository on a free loopback port with `S2F_PROJECT_ROOT` pointing at that project, waits on
/readyz, and stops the whole process group afterwards.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import mlflow
import numpy as np
import psutil
import torch
import yaml

from sketch2fashion.imaging.io import encode_png
from sketch2fashion.params import deep_merge, load_params
from sketch2fashion.serving.launcher import BentoServe
from mlflow_sandbox import MLFLOW_ENV, isolated_mlflow
from waiting import HANG_SECONDS

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ("top", "pants")
SIZE = 64
MODEL = {"ngf": 8, "depth": "auto", "norm": "instance", "dropout": 0.5, "dropout_layers": 3}
POLL_SECONDS = 1.0
LIMITS = {"max_body_bytes": 2_000_000, "max_pixels": 4_000_000, "min_side": 16, "max_side": 512,
          "max_text_chars": 200, "max_top_k": 100, "default_top_k": 5}


@dataclass(frozen=True)
class Project:
    root: Path
    categories: tuple[str, ...]

    @property
    def params_path(self) -> Path:
        return self.root / "params.yaml"


def project_params(root: Path, **serving_overrides) -> dict:
    params = deep_merge(load_params(ROOT / "params.yaml"), {
        "categories": list(CATEGORIES),
        "image": {"size": SIZE},
        "model": MODEL,
        "catalog": {"store": "data/catalog/catalog.sqlite", "index": "data/catalog/index", "url": ""},
        "search": {"encoder": {"size": 64}, "keep_versions": 2},
        "serving": deep_merge({
            "model_source": "registry",
            "poll_seconds": POLL_SECONDS,
            "device": "cpu",
            "dtype": "auto",
            "threads": 1,
            "photo_format": "png",  # the tests ask for JPEG where they mean it
            "batching": {"max_batch_size": 8, "max_latency_ms": 20000},
            "traffic": {"timeout": 60, "max_concurrency": 64},
            "limits": LIMITS,
        }, serving_overrides),
    })
    return params


def tiny_generator(seed: int, *, broken: bool = False) -> torch.nn.Module:
    """A 64 px ngf-8 U-Net; `broken` fills its weights with NaN (loads fine, fails the probe)."""
    from sketch2fashion.models.networks import build_generator

    torch.manual_seed(seed)
    generator = build_generator(MODEL, SIZE)
    if broken:
        with torch.no_grad():
            for p in generator.parameters():
                p.fill_(float("nan"))
    return generator


def add_version(root: Path, category: str, seed: int, *, ssim: float, broken: bool = False) -> int:
    """Log a tiny colorizer in a run and register it as a new version (not promoted)."""
    from sketch2fashion.registry.colorizer_model import log_colorizer
    from sketch2fashion.registry.promotion import register_version
    from sketch2fashion.registry.tracking import configure, get_or_create_experiment

    with isolated_mlflow():
        configure(root)
        experiment = get_or_create_experiment("colorizer-serving-test")
        with mlflow.start_run(experiment_id=experiment) as run:
            info = log_colorizer(tiny_generator(seed, broken=broken), category=category, image_size=SIZE,
                                 model_config=MODEL, step=seed)
        version = register_version(run.info.run_id, category, ssim=ssim, epoch=seed,
                                   model_uri=info.model_uri)
        return int(version.version)


def promote_version(root: Path, category: str, version: int) -> None:
    from sketch2fashion.registry.promotion import promote
    from sketch2fashion.registry.tracking import configure

    with isolated_mlflow():
        promote(configure(root), category, version)


def add_classifier(root: Path, seed: int = 0) -> int:
    """Register a tiny (untrained) sketch classifier of CATEGORIES and make it champion by hand."""
    from sketch2fashion.classifier import registry
    from sketch2fashion.classifier.model import SketchClassifier, save_classifier
    from sketch2fashion.registry.promotion import promote
    from sketch2fashion.registry.tracking import configure, get_or_create_experiment

    with isolated_mlflow():
        client = configure(root)
        torch.manual_seed(seed)
        path = save_classifier(root / f"classifier-{seed}.pt", SketchClassifier(CATEGORIES, image_size=32, width=8))
        with mlflow.start_run(experiment_id=get_or_create_experiment("classifier-serving-test")):
            version = int(registry.log_and_register(path, 0.5, client).version)
        promote(client, registry.MODEL_NAME, version)
        return version


def build_catalog(root: Path, params: dict, per_category: int = 4) -> str:
    """Demo products -> catalog store -> published index (with an untrained small encoder)."""
    from sketch2fashion.catalog.embedder import ImageEncoder, save_encoder
    from sketch2fashion.catalog.search import build_catalog_index
    from sketch2fashion.catalog.store import CatalogStore, ingest_feed
    from sketch2fashion.demo import make_demo_dataset

    feed = make_demo_dataset(root / "demo", categories=list(CATEGORIES), per_category=per_category,
                             seed=0, size=96)
    store_path = root / params["catalog"]["store"]
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with CatalogStore(store_path) as store:
        ingest_feed(feed, store, jobs=1)
    torch.manual_seed(0)
    encoder_path = root / "models" / "embedder.pt"
    save_encoder(encoder_path, ImageEncoder(dim=16, image_size=64, width=8).eval())
    return build_catalog_index(params, project_root=root, encoder_path=encoder_path, progress=False)


def make_project(root: Path, *, catalog: bool = True, training: tuple[str, ...] = (),
                 **serving_overrides) -> Project:
    """The scratch project: params.yaml, one promoted champion per category, a catalog index.

    Categories in `training` get no champion, only the progress file a running training writes
    (epoch 2 of 4), as while `make demo` still trains them.
    """
    from sketch2fashion.colorizer.progress import ProgressFile, progress_path

    root.mkdir(parents=True, exist_ok=True)
    params = project_params(root, **serving_overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for seed, category in enumerate(CATEGORIES):
        if category in training:
            ProgressFile(progress_path(root / "models", category), category, 4).update(epoch=2, step=5, steps=16)
            continue
        version = add_version(root, category, seed, ssim=0.5)
        promote_version(root, category, version)
    if catalog:
        build_catalog(root, params)
    return Project(root, CATEGORIES)


# --- drawings and bad inputs ---------------------------------------------------------------------

def sketch_png(size: int = 128, hints: int = 2) -> bytes:
    """Black garment outline on white paper with `hints` coloured dots."""
    img = np.full((size, size, 3), 255, np.uint8)
    cv2.rectangle(img, (size // 4, size // 5), (3 * size // 4, 4 * size // 5), (0, 0, 0), 2)
    colours = [(220, 30, 30), (30, 60, 210), (40, 170, 60), (230, 200, 20)]
    for i in range(hints):
        cv2.circle(img, (size // 3 + i * size // 6, size // 2), max(2, size // 20), colours[i % 4], -1)
    return encode_png(img)


def photo_png(size: int = 96) -> bytes:
    img = np.full((size, size, 3), 250, np.uint8)
    cv2.rectangle(img, (size // 5, size // 6), (4 * size // 5, 5 * size // 6), (200, 40, 40), -1)
    return encode_png(img)


def bomb_png(side: int = 30000) -> bytes:
    """A valid 1-bit `side` x `side` PNG of a few hundred KB: 900 megapixels once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\x00" + b"\xff" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(compressor.compress(row * (side % 1000)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


# --- the server ----------------------------------------------------------------------------------

class BentoServer(BentoServe):
    """`bentoml serve service:API` on the scratch project (the package's launcher), ready on enter."""

    def __init__(self, project: Project, log_path: Path, *, ready_timeout: float = HANG_SECONDS,
                 env: dict[str, str] | None = None, ready_path: str = "/readyz") -> None:
        environment = {k: v for k, v in os.environ.items() if k not in MLFLOW_ENV and k != "CUDA_VISIBLE_DEVICES"}
        environment.update({"BENTOML_HOME": str(project.root / "bentoml"), "OMP_NUM_THREADS": "1", **(env or {})})
        super().__init__(project.root, env=environment, log_path=log_path)
        self.project = project
        self.ready_path = ready_path  # /livez for a project that is not meant to be ready (a category training)
        self.ready_timeout = ready_timeout

    def __enter__(self) -> BentoServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, path: str | None = None, timeout: float | None = None) -> None:
        super().wait_ready(path or self.ready_path, timeout or self.ready_timeout)

    def __exit__(self, *exc: object) -> None:
        self.stop(grace=20.0)


def service_process(server: BentoServer, name: str) -> psutil.Process:
    """The worker process of one BentoML service (API, Colorizer, Catalog) of a running server."""
    for child in psutil.Process(server.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            args = child.cmdline()
            if "--service-name" in args and args[args.index("--service-name") + 1] == name:
                return child
    raise LookupError(f"no {name} worker under bentoml serve (pid {server.process.pid})")


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """/metrics as {sample name: [(labels, value), ...]} (prometheus_client's own parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples
