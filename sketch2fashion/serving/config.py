"""Serving settings: params.yaml's `serving:` section plus the project's categories and image size.

The service finds its project through `S2F_PROJECT_ROOT` (default: the working folder), so a
test or an operator can point a real `bentoml serve service:API` at another registry and
catalog without touching the repository. BentoML reads its decorator settings (batching,
traffic) when `service.py` is imported, so they come from here too.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sketch2fashion.params import ParamsError, categories, load_params, require, section

PROJECT_ROOT_ENV = "S2F_PROJECT_ROOT"
PARAMS_ENV = "S2F_PARAMS"
MODEL_SOURCES = ("auto", "registry", "bundled")
COLORIZER_PLACEMENTS = ("inline", "service")
"""serving.colorizer: the champions in the API process, or in the Colorizer service (serving/colorizers.py)."""
OMP_WAIT_POLICIES = ("", "PASSIVE", "ACTIVE")
PHOTO_MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}
"""How generated photos go out (serving.photo_format, or a request's `format` field) -> media type."""
PHOTO_FORMATS = tuple(PHOTO_MEDIA_TYPES)
AUTO_CATEGORY = "auto"


@dataclass(frozen=True)
class Limits:
    """What one request may carry; anything beyond is refused with a 4xx before real work."""

    max_body_bytes: int
    max_pixels: int
    min_side: int
    max_side: int
    max_text_chars: int
    max_top_k: int
    default_top_k: int


SERVING_KEYS = ("model_source", "colorizer", "poll_seconds", "device", "dtype", "compile", "compile_batch_sizes",
                "threads", "keep_freed_memory", "png_compression", "photo_format", "jpeg_quality", "omp_wait_policy",
                "batching", "traffic", "limits")
BATCHING_KEYS = ("max_batch_size", "max_latency_ms")
TRAFFIC_KEYS = ("timeout", "max_concurrency", "retry_after", "session_max_requests", "session_max_age")


@dataclass(frozen=True)
class ServingConfig:
    """Everything the three services need, resolved against the project root.

    No field has a default: params.yaml `serving:` is the one table of them, and a key missing
    there is an error naming it (`from_params`), never a silent fallback to another value.
    """

    project_root: Path
    categories: tuple[str, ...]
    image_size: int
    model_source: str
    colorizer: str
    poll_seconds: float
    device: str
    dtype: str
    compile: str
    compile_batch_sizes: tuple[int, ...]
    threads: int
    omp_wait_policy: str
    keep_freed_memory: bool
    png_compression: int
    photo_format: str
    jpeg_quality: int
    max_batch_size: int
    max_latency_ms: int
    timeout: float
    max_concurrency: int
    retry_after: int
    session_max_requests: int
    session_max_age: float
    limits: Limits

    @classmethod
    def from_params(cls, params: Mapping[str, Any], project_root: Path, source: str = "params.yaml") -> ServingConfig:
        """The `serving` section (every key required, no others) plus `categories` and `image.size`."""
        serving = section(params, "serving", SERVING_KEYS, source)
        batching = section(params, "serving.batching", BATCHING_KEYS, source)
        traffic = section(params, "serving.traffic", TRAFFIC_KEYS, source)
        limits_section = section(params, "serving.limits", tuple(Limits.__dataclass_fields__), source)
        limits = Limits(**{k: int(v) for k, v in limits_section.items()})
        source_kind = str(serving["model_source"])
        if source_kind not in MODEL_SOURCES:
            raise ParamsError(f"{source} serving.model_source must be one of {MODEL_SOURCES}, got {source_kind!r}")
        if not 1 <= limits.default_top_k <= limits.max_top_k:
            raise ParamsError(f"{source} serving.limits: need 1 <= default_top_k <= max_top_k")
        cats = tuple(categories(dict(params)))
        if AUTO_CATEGORY in cats:
            raise ParamsError(f"'{AUTO_CATEGORY}' cannot be a category: it asks the classifier to pick one")
        omp_policy = str(serving["omp_wait_policy"] or "").upper()
        if omp_policy not in OMP_WAIT_POLICIES:
            raise ParamsError(f"{source} serving.omp_wait_policy must be PASSIVE, ACTIVE or \"\", got {omp_policy!r}")
        placement = str(serving["colorizer"])
        if placement not in COLORIZER_PLACEMENTS:
            raise ParamsError(f"{source} serving.colorizer must be one of {COLORIZER_PLACEMENTS}, got {placement!r}")
        compile_setting = str(serving["compile"])
        if compile_setting not in ("auto", "on", "off"):
            raise ParamsError(f"{source} serving.compile must be auto, on or off, got {compile_setting!r}")
        compile_sizes = tuple(sorted({int(b) for b in serving["compile_batch_sizes"] or ()}))
        if not compile_sizes or compile_sizes[0] < 1:
            raise ParamsError(f"{source} serving.compile_batch_sizes must list positive batch sizes, "
                              f"got {list(compile_sizes)}")
        png_compression = int(serving["png_compression"])
        if not 0 <= png_compression <= 9:
            raise ParamsError(f"{source} serving.png_compression must be 0..9, got {png_compression}")
        photo_format = str(serving["photo_format"]).lower()
        if photo_format not in PHOTO_FORMATS:
            raise ParamsError(f"{source} serving.photo_format must be one of {PHOTO_FORMATS}, got {photo_format!r}")
        jpeg_quality = int(serving["jpeg_quality"])
        if not 1 <= jpeg_quality <= 100:
            raise ParamsError(f"{source} serving.jpeg_quality must be 1..100, got {jpeg_quality}")
        retry_after = int(traffic["retry_after"])
        if retry_after < 0:
            raise ParamsError(f"{source} serving.traffic.retry_after must be >= 0 seconds, got {retry_after}")
        return cls(
            project_root=project_root,
            categories=cats,
            image_size=int(require(params, "image.size", source)),
            model_source=source_kind,
            colorizer=placement,
            poll_seconds=float(serving["poll_seconds"]),
            device=str(serving["device"]),
            dtype=str(serving["dtype"]),
            compile=compile_setting,
            compile_batch_sizes=compile_sizes,
            threads=int(serving["threads"]),
            omp_wait_policy=omp_policy,
            keep_freed_memory=_flag(serving["keep_freed_memory"], f"{source} serving.keep_freed_memory"),
            png_compression=png_compression,
            photo_format=photo_format,
            jpeg_quality=jpeg_quality,
            max_batch_size=int(batching["max_batch_size"]),
            max_latency_ms=int(batching["max_latency_ms"]),
            timeout=float(traffic["timeout"]),
            max_concurrency=int(traffic["max_concurrency"]),
            retry_after=retry_after,
            session_max_requests=int(traffic["session_max_requests"]),
            session_max_age=float(traffic["session_max_age"]),
            limits=limits,
        )

    @property
    def model_config(self) -> dict[str, Any]:
        """How the Colorizer loads each champion (ColorizerModel's MLflow `model_config`)."""
        return {"device": self.device, "dtype": self.dtype, "compile": self.compile,
                "batch_sizes": list(self.compile_batch_sizes)}

    @property
    def params_path(self) -> Path:
        return params_path(self.project_root)


def project_root() -> Path:
    """`S2F_PROJECT_ROOT` when set, else the working folder (where `bentoml serve` runs)."""
    return Path(os.environ.get(PROJECT_ROOT_ENV) or Path.cwd()).resolve()


def params_path(root: Path) -> Path:
    """`S2F_PARAMS` when set (relative to the project root), else `<root>/params.yaml`."""
    return _resolve(root, os.environ.get(PARAMS_ENV) or "params.yaml")


def load_serving_config(root: Path | None = None) -> ServingConfig:
    """The serving configuration of the project at `root` (default: `project_root()`)."""
    root = Path(root).resolve() if root is not None else project_root()
    path = params_path(root)
    return ServingConfig.from_params(load_params(path), root, str(path))


def apply_omp_wait_policy(config: ServingConfig) -> None:
    """Export `serving.omp_wait_policy` as OMP_WAIT_POLICY for this process, unless already set.

    libgomp (torch's OpenMP runtime) reads it once, when torch is first imported, so service.py
    calls this before anything imports torch; an operator's own OMP_WAIT_POLICY wins.
    """
    if not config.omp_wait_policy or os.environ.get("OMP_WAIT_POLICY"):
        return
    if "torch" in sys.modules:
        logging.getLogger("sketch2fashion.serving").warning(
            "torch was imported before serving.omp_wait_policy could apply; set OMP_WAIT_POLICY=%s "
            "in the environment instead", config.omp_wait_policy)
    os.environ["OMP_WAIT_POLICY"] = config.omp_wait_policy


def load_project_params(config: ServingConfig) -> dict[str, Any]:
    """The whole params file (the catalog reads its own sections from it)."""
    return load_params(config.params_path)


def _resolve(root: Path, value: str | Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else root / path


def _flag(value: Any, key: str) -> bool:
    """A YAML boolean; anything else (a quoted "false", 0) is refused rather than guessed."""
    if not isinstance(value, bool):
        raise ParamsError(f"{key} must be true or false, got {value!r}")
    return value
