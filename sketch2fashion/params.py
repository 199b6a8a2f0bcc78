"""Pipeline parameters: one `params.yaml` read by every stage, with optional profile overlays.

DVC tracks the file itself, so stages read it rather than taking many flags; a profile (such as
`profiles/tiny.yaml`) is deep-merged over it for quick runs.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """A params file is missing or malformed; the message names the file and the fix."""


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file; run from the project root or pass --params")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc}); fix the file or restore it with git") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at top level")
    return data


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
