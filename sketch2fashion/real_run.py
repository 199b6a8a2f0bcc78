"""`s2f real`: every `dvc repro` stage on a real photo set, in its own project folder and registry.

The demo's procedural photos are easy; a shop's own photos lie on floors, beds and hangers and come
without a product feed. This runs the unchanged pipeline on such a set (by default
`../shared/data/clothing-small`): the photos stay where they are, each gets a generated product
card (`catalog/cards.py`) so the catalog and its links work, and everything the run writes (data,
models, reports, the MLflow store) lives under the project folder, so the demo's registry is never
touched. Running it again resumes: `dvc repro` skips what is up to date.

Budgets are profiles merged over params.yaml + `profiles/real.yaml`: `cpu` (real.yaml alone, sized
for 2 CPU cores), `gpu` (`profiles/real-gpu.yaml`: the full U-Net) and `tiny` (`profiles/tiny.yaml`:
the CI test's few photos). `make serve PROJECT=real` serves the result.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sketch2fashion.catalog.cards import write_card_feed
from sketch2fashion.data.ingest import scan_source
from sketch2fashion.params import categories, load_params, with_profile
from sketch2fashion.pipeline import make_scratch_project, tool_env
from sketch2fashion.registry.tracking import DB_NAME, TRACKING_URI_ENV

BUDGETS: dict[str, tuple[str, ...]] = {"cpu": (), "gpu": ("real-gpu",), "tiny": ("tiny",)}
"""Profiles merged over `profiles/real.yaml`, per budget."""
DEFAULT_PHOTOS = Path("../shared/data/clothing-small")
CARD_FEED = Path("data/cards/products.csv")
SERVING_FILES = ("service.py", "bentofile.yaml")
"""Copied beside the pipeline so the folder is a whole project: `bentoml serve` runs in it."""
RUN_REPORT = Path("reports/real/run.json")


class RealRunError(RuntimeError):
    """The real run cannot start or a stage failed; the message says which and what to do."""


def real_params(root: Path, budget: str, photos: Path) -> dict[str, Any]:
    """params.yaml + profiles/real.yaml + the budget's profiles, pointed at `photos` (absolute)."""
    if budget not in BUDGETS:
        raise RealRunError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    params = with_profile(load_params(root / "params.yaml"), root / "profiles" / "real.yaml")
    for name in BUDGETS[budget]:
        params = with_profile(params, root / "profiles" / f"{name}.yaml")
    params["source"]["path"] = str(photos.resolve())
    params["source"]["feed"] = CARD_FEED.as_posix()
    doodles = params["classifier"]["real_doodles"]  # relative to the repository, not the project folder
    if doodles and not Path(doodles).is_absolute():
        params["classifier"]["real_doodles"] = str((root / doodles).resolve())
    return params


def photo_subset(photos: Path, dest: Path, params: dict[str, Any], per_category: int) -> Path:
    """`dest/<category>/` holding links to the first `per_category` photos of each category (in
    ingest's order): a small real run without copying a photo."""
    if dest.exists():
        shutil.rmtree(dest)
    aliases = params["source"]["aliases"]
    for category in categories(params):
        files = scan_source(photos, category, aliases)[:per_category]
        (dest / category).mkdir(parents=True, exist_ok=True)
        for path in files:
            (dest / category / path.name).symlink_to(path.resolve())
    return dest


def prepare_project(root: Path, project: Path, *, budget: str = "cpu", photos: Path = DEFAULT_PHOTOS,
                    per_category: int | None = None) -> dict[str, Any]:
    """Create or refresh `project`: the pipeline and code, the merged params, the card feed.
    Returns the params written. Data, models and the MLflow store of an earlier run are kept."""
    photos = (root / photos) if not photos.is_absolute() else photos
    if not photos.is_dir():
        raise RealRunError(f"{photos}: no such photo folder; pass --photos (class folders of photos: "
                           f"<root>/<category>/*.jpg), e.g. ../shared/data/clothing-small")
    params = real_params(root, budget, photos)
    project.mkdir(parents=True, exist_ok=True)
    if per_category:
        photos = photo_subset(photos, project / "photos", params, per_category)
        params["source"]["path"] = str(photos.resolve())
    make_scratch_project(root, project, params)
    for name in SERVING_FILES:
        shutil.copy2(root / name, project / name)
    write_card_feed(project / CARD_FEED, photos, categories(params), params["source"]["aliases"])
    return params


def project_env(project: Path) -> dict[str, str]:
    """The stages' environment: the project's own SQLite MLflow store, whatever the shell has set."""
    env = tool_env()
    env[TRACKING_URI_ENV] = f"sqlite:///{(project / 'mlflow' / DB_NAME).resolve()}"
    return env


def run_real(root: Path, project: Path, *, budget: str = "cpu", photos: Path = DEFAULT_PHOTOS,
             per_category: int | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Prepare `project` and `dvc repro` it (its output streamed); the run's summary, also written
    to `<project>/reports/real/run.json`."""
    started = time.monotonic()
    params = prepare_project(root, project, budget=budget, photos=photos, per_category=per_category)
    echo(f"s2f real: {budget} budget, photos {params['source']['path']}, project {project}")
    (project / "mlflow").mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, env=project_env(project))
    if proc.returncode != 0:
        raise RealRunError(f"`dvc repro` failed in {project} (exit {proc.returncode}); see its output above. "
                           "Fix the cause and run `s2f real` again: finished stages are kept")
    summary = {"budget": budget, "photos": params["source"]["path"], "per_category": per_category,
               "seconds": round(time.monotonic() - started, 1), "hardware": hardware(),
               "tracking_uri": project_env(project)[TRACKING_URI_ENV]}
    path = project / RUN_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def hardware() -> str:
    """The CPU as every timing names it, and the GPU when torch sees one (the gpu budget's figures)."""
    import torch

    from sketch2fashion.demo_run import cpu_name

    return cpu_name() + (f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "")
