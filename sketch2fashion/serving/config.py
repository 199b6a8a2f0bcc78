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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketch2fashion.params import ParamsError, categories, load_params

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

    max_body_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 16_000_000
    min_side: int = 32
    max_side: int = 512
    max_text_chars: int = 500
    max_top_k: int = 100
    default_top_k: int = 12


@dataclass(frozen=True)
class ServingConfig:
    """Everything the three services need, resolved against the project root."""

    project_root: Path
    categories: tuple[str, ...]
    image_size: int
    model_source: str = "auto"
    colorizer: str = "service"
    poll_seconds: float = 30.0
    device: str = "auto"
    dtype: str = "auto"
    compile: str = "off"
    compile_batch_sizes: tuple[int, ...] = (1, 8)
    threads: int = 2
    omp_wait_policy: str = "PASSIVE"
    keep_freed_memory: bool = True
    png_compression: int = 6
    photo_format: str = "png"
    jpeg_quality: int = 92
    max_batch_size: int = 16
    max_latency_ms: int = 200
    timeout: float = 60.0
    max_concurrency: int = 64
    retry_after: int = 1
    session_max_requests: int = 1_000_000_000
    session_max_age: float = 86400.0
    limits: Limits = field(default_factory=Limits)
    classifier: Path | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any], project_root: Path) -> ServingConfig:
        section = dict(params.get("serving") or {})
        batching = dict(section.get("batching") or {})
        traffic = dict(section.get("traffic") or {})
        known_limits = set(Limits.__dataclass_fields__)
        limits_section = dict(section.get("limits") or {})
        unknown = set(limits_section) - known_limits
        if unknown:
            raise ParamsError(f"params.yaml serving.limits: unknown key(s) {sorted(unknown)}; "
                              f"known: {sorted(known_limits)}")
        limits = Limits(**{k: int(v) for k, v in limits_section.items()})
        source = str(section.get("model_source", "auto"))
        if source not in MODEL_SOURCES:
            raise ParamsError(f"params.yaml serving.model_source must be one of {MODEL_SOURCES}, got {source!r}")
        if not 1 <= limits.default_top_k <= limits.max_top_k:
            raise ParamsError("params.yaml serving.limits: need 1 <= default_top_k <= max_top_k")
        cats = tuple(categories(dict(params)))
        if AUTO_CATEGORY in cats:
            raise ParamsError(f"'{AUTO_CATEGORY}' cannot be a category: it asks the classifier to pick one")
        classifier = section.get("classifier")
        omp_policy = str(section.get("omp_wait_policy", "PASSIVE") or "").upper()
        if omp_policy not in OMP_WAIT_POLICIES:
            raise ParamsError(f"params.yaml serving.omp_wait_policy must be PASSIVE, ACTIVE or \"\", got {omp_policy!r}")
        placement = str(section.get("colorizer", "service"))
        if placement not in COLORIZER_PLACEMENTS:
            raise ParamsError(f"params.yaml serving.colorizer must be one of {COLORIZER_PLACEMENTS}, got {placement!r}")
        compile_setting = str(section.get("compile", "off"))
        if compile_setting not in ("auto", "on", "off"):
            raise ParamsError(f"params.yaml serving.compile must be auto, on or off, got {compile_setting!r}")
        compile_sizes = tuple(sorted({int(b) for b in (section.get("compile_batch_sizes") or [1, 8])}))
        if compile_sizes[0] < 1:
            raise ParamsError(f"params.yaml serving.compile_batch_sizes must be positive, got {list(compile_sizes)}")
        png_compression = int(section.get("png_compression", 6))
        if not 0 <= png_compression <= 9:
            raise ParamsError(f"params.yaml serving.png_compression must be 0..9, got {png_compression}")
        photo_format = str(section.get("photo_format", "png")).lower()
        if photo_format not in PHOTO_FORMATS:
            raise ParamsError(f"params.yaml serving.photo_format must be one of {PHOTO_FORMATS}, got {photo_format!r}")
        jpeg_quality = int(section.get("jpeg_quality", 92))
        if not 1 <= jpeg_quality <= 100:
            raise ParamsError(f"params.yaml serving.jpeg_quality must be 1..100, got {jpeg_quality}")
        retry_after = int(traffic.get("retry_after", 1))
        if retry_after < 0:
            raise ParamsError(f"params.yaml serving.traffic.retry_after must be >= 0 seconds, got {retry_after}")
        return cls(
            project_root=project_root,
            categories=cats,
            image_size=int((params.get("image") or {}).get("size", 256)),
            model_source=source,
            colorizer=placement,
            poll_seconds=float(section.get("poll_seconds", 30)),
            device=str(section.get("device", "auto")),
            dtype=str(section.get("dtype", "auto")),
            compile=compile_setting,
            compile_batch_sizes=compile_sizes,
            threads=int(section.get("threads", 2)),
            omp_wait_policy=omp_policy,
            keep_freed_memory=_flag(section.get("keep_freed_memory", True), "serving.keep_freed_memory"),
            png_compression=png_compression,
            photo_format=photo_format,
            jpeg_quality=jpeg_quality,
            max_batch_size=int(batching.get("max_batch_size", 16)),
            max_latency_ms=int(batching.get("max_latency_ms", 200)),
            timeout=float(traffic.get("timeout", 60)),
            max_concurrency=int(traffic.get("max_concurrency", 64)),
            retry_after=retry_after,
            session_max_requests=int(traffic.get("session_max_requests", 1_000_000_000)),
            session_max_age=float(traffic.get("session_max_age", 86400)),
            limits=limits,
            classifier=_resolve(project_root, classifier) if classifier else None,
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
    params = load_params(params_path(root))
    return ServingConfig.from_params(params, root)


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
        raise ParamsError(f"params.yaml {key} must be true or false, got {value!r}")
    return value
