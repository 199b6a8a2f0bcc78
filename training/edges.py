"""DVC stage `edges@<category>`: a sketch-like edge map for every ingested garment photo.

Reads `<data>/raw/<category>/manifest.csv` (written by ingest), writes
`<data>/edges/<category>/<id>.png` for every row (stale files cleared first, each PNG written
atomically) and a JSON report with throughput and quality figures. Work is spread over
`--jobs` processes; each image is independent.

    python training/edges.py --category top [--params params.yaml] [--jobs 2]
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
import multiprocessing
from pathlib import Path
from typing import Any

import click
import cv2
import numpy as np
from tqdm import tqdm

from sketch2fashion.data.manifest import ManifestError, read_manifest
from sketch2fashion.imaging.edges import (
    DEFAULT_LIGHT_WORDS,
    REFERENCE_SIZE,
    ink_fraction,
    is_light_garment,
    sketch_edges,
)
from sketch2fashion.imaging.io import ImageRejected, load_rgb, save_png, write_bytes_atomic
from sketch2fashion.imaging.outline import outline_closure
from sketch2fashion.params import ParamsError, load_params


class StageError(RuntimeError):
    """A problem the user can fix; the message names the file and the fix."""


@dataclass(frozen=True)
class EdgeSettings:
    """The `edges` params, resolved once and shipped to the worker processes."""

    line_width: float = 2
    min_component: int = 12
    canny_sigma: float = 0.33
    clahe_clip: float = 2.0
    light_words: tuple[str, ...] = field(default=DEFAULT_LIGHT_WORDS)
    reference_size: int = REFERENCE_SIZE

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> EdgeSettings:
        edges = params.get("edges") or {}
        return cls(
            line_width=float(edges.get("line_width", cls.line_width)),
            min_component=int(edges.get("min_component", cls.min_component)),
            canny_sigma=float(edges.get("canny_sigma", cls.canny_sigma)),
            clahe_clip=float(edges.get("clahe_clip", cls.clahe_clip)),
            light_words=tuple(str(w) for w in edges.get("light_words", DEFAULT_LIGHT_WORDS)),
        )


def _load_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise StageError(f"{path}: mask missing or unreadable; re-run the ingest stage")
    return mask


def edge_one(row: dict[str, str], *, data_dir: Path, out_dir: Path,
             settings: EdgeSettings) -> dict[str, float]:
    """Edge map of one manifest row, written to out_dir/<id>.png; returns its quality figures."""
    image_path, mask_path = data_dir / row["image"], data_dir / row["mask"]
    try:
        rgb = load_rgb(image_path)
    except ImageRejected as exc:
        raise StageError(f"{image_path}: {exc}; re-run the ingest stage") from None
    mask = _load_mask(mask_path)
    if mask.shape != rgb.shape[:2]:
        raise StageError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but the photo is "
                         f"{rgb.shape[1]}x{rgb.shape[0]}; re-run the ingest stage")
    title = row.get("title", "")
    edges = sketch_edges(rgb, mask, title=title, line_width=settings.line_width,
                         min_component=settings.min_component, canny_sigma=settings.canny_sigma,
                         clahe_clip=settings.clahe_clip, light_words=settings.light_words,
                         reference_size=settings.reference_size)
    save_png(out_dir / f"{row['id']}.png", edges)
    return {
        "ink_fraction": ink_fraction(edges),
        "outline_closure": outline_closure(edges, mask),
        "light": float(is_light_garment(rgb, mask, title, settings.light_words)),
    }


def _quiet_worker() -> None:
    """One OpenCV thread per process: `--jobs` processes should mean `--jobs` busy cores."""
    cv2.setNumThreads(1)


def clear_folder(folder: Path) -> None:
    """Empty `folder` (creating it), so edge maps of rows no longer in the manifest go away."""
    folder.mkdir(parents=True, exist_ok=True)
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _checked_rows(manifest: Path, out_dir: Path) -> list[dict[str, str]]:
    try:
        rows = read_manifest(manifest)
    except ManifestError as exc:
        fix = f"(dvc repro ingest@{out_dir.name})"
        raise StageError(str(exc).replace("(dvc repro)", fix)) from None
    for row in rows:
        if not row["id"] or Path(row["id"]).name != row["id"] or row["id"] in (".", ".."):
            raise StageError(f"{manifest}: id {row['id']!r} is not a plain file name; "
                             "re-run the ingest stage")
    return rows


def run_stage(category: str, params: dict[str, Any], data_dir: Path, jobs: int,
              progress: bool = True) -> dict[str, Any]:
    """Edge maps for one category; returns the report (see `main`)."""
    out_dir = data_dir / "edges" / category
    rows = _checked_rows(data_dir / "raw" / category / "manifest.csv", out_dir)
    settings = EdgeSettings.from_params(params)
    clear_folder(out_dir)
    work = partial(edge_one, data_dir=data_dir, out_dir=out_dir, settings=settings)
    bar = partial(tqdm, total=len(rows), desc=f"edges {category}", unit="img", disable=not progress)
    start = time.perf_counter()
    if jobs <= 1:
        _quiet_worker()
        results = [result for result in bar(map(work, rows))]
    else:
        chunk = max(1, min(32, len(rows) // (jobs * 4)))
        # spawn, not fork: a child forked after OpenCV ran in the parent can hang forever.
        with multiprocessing.get_context("spawn").Pool(jobs, initializer=_quiet_worker) as pool:
            results = list(bar(pool.imap(work, rows, chunksize=chunk)))
    seconds = time.perf_counter() - start

    def mean(key: str) -> float | None:
        return round(float(np.mean([r[key] for r in results])), 4) if results else None

    return {
        "category": category,
        "images": len(results),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(results) / seconds, 2) if seconds > 0 and results else 0.0,
        "jobs": jobs,
        "mean_ink_fraction": mean("ink_fraction"),
        "mean_outline_closure": mean("outline_closure"),
        "min_outline_closure":
            round(min(r["outline_closure"] for r in results), 4) if results else None,
        "light_detected": int(sum(r["light"] for r in results)),
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--category", required=True, help="Garment category (a name under data/raw/).")
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Params file; its `edges` and `image` sections are used.")
@click.option("--data-dir", default="data", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Data folder (raw/, edges/).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: params edges.jobs).")
@click.option("--report", "report_path", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="JSON report path (default: reports/edges/<category>.json).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def main(category: str, params_path: Path, data_dir: Path, jobs: int | None,
         report_path: Path | None, progress: bool) -> None:
    """Write a sketch-like edge map for every photo in a category's manifest."""
    try:
        params = load_params(params_path)
        jobs = jobs if jobs is not None else int((params.get("edges") or {}).get("jobs", 1))
        report = run_stage(category, params, data_dir, max(1, jobs), progress)
    except (StageError, ParamsError) as exc:
        raise click.ClickException(str(exc)) from None
    report_path = report_path or Path("reports") / "edges" / f"{category}.json"
    write_bytes_atomic(report_path, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    click.echo(f"{category}: {report['images']} edge maps in {report['seconds']} s "
               f"({report['images_per_s']} img/s, {jobs} jobs) -> {data_dir / 'edges' / category}")


if __name__ == "__main__":
    sys.exit(main())
