"""Pipeline parameters: one `params.yaml` read by every stage, with optional profile overlays.

DVC tracks the file itself, so stages read it rather than taking many flags; a profile (such as
`profiles/tiny.yaml`) is deep-merged over it for quick runs.

params.yaml is also the one table of defaults: code reads the keys it needs with `require`
(a missing key is an error naming it, never a silent fallback to some other value), and
`load_params` refuses any key that `SCHEMA` does not know, in every section, so a typo such as
`serving.compiel` cannot be ignored. Sub-sections marked `VALIDATED_BY` are checked key by key by
the code that reads them (their accepted keys live beside their meaning there).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """A params file is missing or malformed; the message names the file and the fix."""


class _ValidatedBy(str):
    """Marks a mapping whose keys its reader checks (the string says which code)."""


def VALIDATED_BY(where: str) -> _ValidatedBy:  # noqa: N802 - reads like a schema keyword
    return _ValidatedBy(where)


LEAF = None
"""A key whose value is a scalar or a list (not checked further here)."""

SCHEMA: dict[str, Any] = {
    "categories": LEAF,
    "image": {"size": LEAF},
    "source": {"path": LEAF, "feed": LEAF, "aliases": VALIDATED_BY("free: category -> folder names")},
    "demo": {"seed": LEAF, "per_category": LEAF, "size": LEAF},
    "ingest": {k: LEAF for k in ("min_side", "max_pixels", "isolate", "jobs", "grabcut_iters",
                                 "mask_fail_low", "mask_fail_high")},
    "split": {k: LEAF for k in ("val_fraction", "test_fraction", "min_test", "salt")},
    "edges": {k: LEAF for k in ("jobs", "line_width", "min_component", "canny_sigma", "clahe_clip",
                                "light_words")},
    "hints": {k: LEAF for k in ("min", "max", "dot_radius", "stroke_fraction")},
    "model": VALIDATED_BY("sketch2fashion/models/networks.py build_generator"),
    "train": {**{k: LEAF for k in ("epochs", "batch_size", "lr", "beta1", "lambda_l1", "lambda_gan",
                                   "eval_every", "seed", "num_workers", "precision", "device",
                                   "keep_checkpoints")},
              "doodle": VALIDATED_BY("sketch2fashion/colorizer/doodle.py DoodleStyle"),
              "augment": VALIDATED_BY("sketch2fashion/colorizer/augment.py SketchAugment")},
    "promote": {"confidence": LEAF, "resamples": LEAF, "seed": LEAF,
                "colorizer": {k: LEAF for k in ("min_gain", "hint_gain", "max_ssim_loss", "doodle_max_ssim_loss",
                                                "doodle_max_delta_e_loss")},
                "classifier": {k: LEAF for k in ("min_gain", "doodle_max_loss")},
                "encoder": {k: LEAF for k in ("min_gain", "doodle_max_loss")}},
    "catalog": {k: LEAF for k in ("store", "allow_private", "allow_file_urls", "jobs", "max_bytes", "timeout", "max_pixels",
                                  "min_side", "image_max_side", "index", "url", "collection")},
    "search": {"weights": VALIDATED_BY("sketch2fashion/catalog/search.py SearchSettings"),
               "tuned_weights": LEAF,
               "tuning": {"queries_per_category": LEAF,
                          "grid": VALIDATED_BY("sketch2fashion/catalog/weight_tuning.py weight_grid")},
               "candidates": LEAF, "colour": {"bins": LEAF},
               "index": VALIDATED_BY("sketch2fashion/catalog/index.py IndexConfig"),
               "keep_versions": LEAF,
               "encoder": {k: LEAF for k in ("dim", "size", "width", "epochs", "batch_size", "lr", "temperature",
                                             "learn_temperature", "photo_pair_weight", "doodle_share", "seed",
                                             "threads")}},
    "classifier": {k: LEAF for k in ("image_size", "load_size", "width", "blocks", "dim", "epochs", "batch_size",
                                     "lr", "weight_decay", "doodle_share", "template_share", "real_doodles", "seed",
                                     "threads")},
    "serving": {**{k: LEAF for k in ("model_source", "colorizer", "poll_seconds", "device", "dtype", "compile",
                                     "compile_batch_sizes", "threads", "keep_freed_memory", "png_compression",
                                     "photo_format", "jpeg_quality", "omp_wait_policy")},
                "batching": {"max_batch_size": LEAF, "max_latency_ms": LEAF},
                "traffic": {k: LEAF for k in ("timeout", "max_concurrency", "retry_after", "session_max_requests",
                                              "session_max_age")},
                "limits": {k: LEAF for k in ("max_body_bytes", "max_pixels", "min_side", "max_side",
                                             "max_text_chars", "max_top_k", "default_top_k")}},
}
"""Every key params.yaml may hold. tests/test_cli.py checks the repository's params.yaml has exactly
these keys, so a key added to the file must be added here (and the other way round)."""


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The params file as a mapping; a key SCHEMA does not know is refused (missing keys are not:
    a profile or a test's params file holds only what it overrides)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file; run from the project root or pass --params")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc}); fix the file or restore it with git") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at top level")
    check_known(data, str(path))
    return data


def check_known(params: Mapping[str, Any], source: str = "params") -> None:
    """Raise ParamsError naming the first key that SCHEMA does not know, and the keys it does."""
    _check(params, SCHEMA, source, "")


def _check(values: Mapping[str, Any], schema: Mapping[str, Any], source: str, prefix: str) -> None:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ParamsError(f"{source}: unknown key {name!r}; the keys {('of ' + prefix.rstrip('.')) if prefix else 'at top level'} "
                              f"are: {known} (a typo? see the repository's params.yaml)")
        rule = schema[key]
        if isinstance(rule, dict):
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ParamsError(f"{source}: {name} must be a mapping of {', '.join(sorted(rule))}")
            _check(value, rule, source, f"{name}.")


def schema_paths(schema: Mapping[str, Any] = SCHEMA, prefix: str = "") -> set[str]:
    """Dotted names of every key in `schema` (a VALIDATED_BY mapping counts as one key)."""
    out: set[str] = set()
    for key, rule in schema.items():
        out.add(f"{prefix}{key}")
        if isinstance(rule, dict):
            out |= schema_paths(rule, f"{prefix}{key}.")
    return out


def require(params: Mapping[str, Any], dotted: str, source: str = "params.yaml") -> Any:
    """The value at `dotted` (e.g. "serving.batching.max_latency_ms"); a missing key is a ParamsError
    that names it. Code reads params this way instead of `.get(key, default)`: params.yaml holds
    the defaults, and a second copy in code would drift from it."""
    value: Any = params
    walked = []
    for part in dotted.split("."):
        walked.append(part)
        if not isinstance(value, Mapping) or part not in value:
            raise ParamsError(f"{source}: missing {'.'.join(walked)}; add it "
                              "(the repository's params.yaml lists every key with its default)")
        value = value[part]
    return value


def section(params: Mapping[str, Any], dotted: str, keys: tuple[str, ...] | set[str],
            source: str = "params.yaml") -> dict[str, Any]:
    """The mapping at `dotted` with exactly `keys`: each required, no others (their reader lists them)."""
    found = require(params, dotted, source)
    if not isinstance(found, Mapping):
        raise ParamsError(f"{source}: {dotted} must be a mapping of {', '.join(sorted(keys))}")
    unknown = sorted(set(found) - set(keys))
    if unknown:
        raise ParamsError(f"{source}: {dotted}: unknown key(s) {unknown}; accepted: {sorted(keys)}")
    return {key: require(params, f"{dotted}.{key}", source) for key in keys}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `override` merged in; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def with_profile(params: dict[str, Any], profile: str | Path | None) -> dict[str, Any]:
    """Overlay a profile file (path, or a name under `profiles/`) onto `params`."""
    if not profile:
        return params
    path = Path(profile)
    if not path.suffix:
        path = Path("profiles") / f"{profile}.yaml"
    return deep_merge(params, load_params(path))


def categories(params: dict[str, Any]) -> list[str]:
    cats = params.get("categories") or []
    if not cats:
        raise ParamsError("params: 'categories' is empty; list at least one garment category")
    return [str(c) for c in cats]
