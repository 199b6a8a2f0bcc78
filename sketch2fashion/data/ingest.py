"""Ingest: raw photos of one category -> square garment-on-white PNGs, masks and a manifest.

Source photos come from shops (clean white shots) or people (garments on floors and beds), in
any format and state of repair. Every readable photo becomes `data/raw/<category>/<id>.png`
with its mask in `data/masks/<category>/<id>.png`; every unreadable one is skipped with one log
line and counted by reason, so a bad file costs one image, never the run.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import re
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
import multiprocessing
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from sketch2fashion.data.manifest import ISOLATION_FAILED, ISOLATION_OK, write_manifest
from sketch2fashion.imaging.io import (
    ImageRejected, fit_within, load_rgb, resize_square, save_png, square_pad,
)
from sketch2fashion.imaging.isolate import (
    METHODS, choose_method, composite_on_white, isolate_garment, mask_fraction,
)
from sketch2fashion.params import ParamsError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})
FEED_COLUMNS: tuple[str, ...] = (
    "id", "title", "description", "link", "image_link", "price", "currency", "brand",
    "product_type", "color", "pattern",
)
FEED_COLUMN_ALIASES = {"category": "product_type", "colour": "color"}
WHITE = (255, 255, 255)
ISOLATION_SCALE = 2  # photos are shrunk to this many times image.size before isolation
_CATEGORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

FeedRow = dict[str, str]
Aliases = Mapping[str, Sequence[str]] | Sequence[str] | None  # params source.aliases, or one list


class IngestError(ValueError):
    """The stage cannot run at all (no source folder, no images); the message says the fix."""


class FeedError(IngestError):
    """The product feed is missing or unusable."""


@dataclass(frozen=True)
class IngestSettings:
    """The `image` and `ingest` params one image needs (picklable for worker processes)."""

    size: int = 256
    isolation: str = "auto"
    grabcut_iters: int = 4
    min_side: int = 32
    max_pixels: int = 50_000_000
    mask_fail_low: float = 0.15
    mask_fail_high: float = 0.95

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> IngestSettings:
        image = params.get("image") or {}
        ingest = params.get("ingest") or {}
        defaults = cls()
        try:
            settings = cls(
                size=int(image.get("size", defaults.size)),
                isolation=str(ingest.get("isolate", defaults.isolation)),
                grabcut_iters=int(ingest.get("grabcut_iters", defaults.grabcut_iters)),
                min_side=int(ingest.get("min_side", defaults.min_side)),
                max_pixels=int(ingest.get("max_pixels", defaults.max_pixels)),
                mask_fail_low=float(ingest.get("mask_fail_low", defaults.mask_fail_low)),
                mask_fail_high=float(ingest.get("mask_fail_high", defaults.mask_fail_high)),
            )
        except (TypeError, ValueError) as exc:
            raise ParamsError(f"params: bad value in image/ingest sections ({exc})") from exc
        if settings.isolation not in METHODS:
            raise ParamsError(f"params: ingest.isolate is {settings.isolation!r}; "
                              f"use one of {', '.join(METHODS)}")
        if settings.size < 8:
            raise ParamsError(f"params: image.size is {settings.size}; use at least 8")
        return settings


@dataclass(frozen=True)
class ImageOutcome:
    """What ingesting one photo produced (the manifest row's measured fields)."""

    width: int
    height: int
    sha256: str
    mask_fraction: float
    isolation: str  # ok | failed
    method: str     # the isolation method actually used


@dataclass
class IngestReport:
    """Counts for one category's ingest run; written as JSON for `dvc metrics`."""

    category: str
    source: str
    found: int = 0
    ingested: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    isolation_failed: int = 0
    isolation_failure_rate: float = 0.0
    isolation_methods: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    images_per_second: float = 0.0
    jobs: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scan_source(root: str | Path, category: str, aliases: Aliases = None) -> list[Path]:
    """Image files of `category` under `root`, sorted by relative path (deterministic ids).

    Looks in folders named after the category or one of its aliases (case-insensitive), either
    right under `root` or one level down (`train/t-shirt/`, `validation/t-shirt/`).
    """
    root = Path(root)
    names = _folder_names(category, aliases)
    folders: list[Path] = []
    for first in _subfolders(root):
        if first.name.lower() in names:
            folders.append(first)
        folders.extend(second for second in _subfolders(first) if second.name.lower() in names)
    files = {path for folder in folders for path in folder.iterdir()
             if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
             and path.is_file()}
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


def assign_ids(files: Sequence[Path], root: str | Path) -> list[str]:
    """File stems as ids; a repeated stem gets a suffix hashed from its relative path.

    The first file (in sorted order) keeps the bare stem, which is what a product feed uses.
    """
    root = Path(root)
    seen: set[str] = set()
    ids: list[str] = []
    for path in files:
        item_id = path.stem
        if item_id in seen:
            relative = path.relative_to(root).as_posix()
            item_id = f"{path.stem}-{hashlib.sha256(relative.encode()).hexdigest()[:8]}"
        seen.add(item_id)
        ids.append(item_id)
    return ids


def read_feed(path: str | Path) -> dict[str, FeedRow]:
    """Product feed (Merchant Center columns) keyed by id; CSV, or TSV for .tsv/.tab/.txt.

    Missing optional columns read as ""; `category` is accepted for `product_type` and `colour`
    for `color`, as are "Image Link"-style headers.
    """
    path = Path(path)
    if not path.is_file():
        raise FeedError(f"{path}: product feed not found; pass --feed '' to ingest without one")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab", ".txt") else ","
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return _parse_feed(csv.reader(fh, delimiter=delimiter), path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FeedError(f"{path}: not a readable UTF-8 CSV/TSV feed ({exc}); "
                        "re-export it as UTF-8") from exc


def _parse_feed(reader: Any, path: Path) -> dict[str, FeedRow]:
    """Rows of an open csv.reader keyed by id; the header decides which column is which."""
    header = next(reader, None)
    if header is None:
        return {}
    names = [_feed_column_name(name) for name in header]
    if "id" not in names:
        raise FeedError(f"{path}: the feed has no 'id' column (found: {', '.join(header)})")
    feed: dict[str, FeedRow] = {}
    for values in reader:
        row = _feed_row(names, values)
        if row["id"] and row["id"] not in feed:  # a repeated id keeps its first row
            feed[row["id"]] = row
    return feed


def ingest_image(source: str | Path, image_out: str | Path, mask_out: str | Path,
                 settings: IngestSettings) -> ImageOutcome:
    """One photo: load -> isolate -> composite on white -> square pad -> resize -> save PNGs.

    Raises ImageRejected for unusable files. A failed isolation (mask share outside the
    `mask_fail_*` bounds) still writes the whole photo, padded on white, and is flagged.
    """
    rgb = load_rgb(source, max_pixels=settings.max_pixels, min_side=settings.min_side)
    height, width = rgb.shape[:2]
    work = fit_within(rgb, ISOLATION_SCALE * settings.size)
    method = choose_method(work) if settings.isolation == "auto" else settings.isolation
    mask = isolate_garment(work, method=method, iters=settings.grabcut_iters)
    share = mask_fraction(mask)
    ok = method == "none" or settings.mask_fail_low <= share <= settings.mask_fail_high
    photo = composite_on_white(work, mask) if ok and method != "none" else work
    image = resize_square(square_pad(photo, WHITE), settings.size)
    mask_square = resize_square(square_pad(mask, 0), settings.size, nearest=True)
    digest = save_png(image_out, image)
    save_png(mask_out, mask_square)
    return ImageOutcome(width=width, height=height, sha256=digest, mask_fraction=round(share, 4),
                        isolation=ISOLATION_OK if ok else ISOLATION_FAILED, method=method)


def ingest_category(source_root: str | Path, category: str, data_dir: str | Path, *,
                    params: Mapping[str, Any], feed: Mapping[str, Mapping[str, str]] | None = None,
                    jobs: int = 1) -> IngestReport:
    """Ingest every photo of `category` into `data_dir`, replacing that category's old outputs.

    Writes data_dir/raw/<category>/<id>.png, data_dir/masks/<category>/<id>.png and
    data_dir/raw/<category>/manifest.csv. Raises IngestError when there is nothing to ingest.
    """
    started = time.perf_counter()
    source_root, data_dir = Path(source_root), Path(data_dir)
    if not _CATEGORY_NAME.fullmatch(category):
        raise IngestError(f"category {category!r} is not a plain name (letters, digits, - and _)")
    if not source_root.is_dir():
        raise IngestError(f"{source_root}: source folder not found; create it (s2f demo-data "
                          f"{source_root}) or point source.path in params.yaml (or --source) "
                          "at your photos")
    settings = IngestSettings.from_params(params)
    aliases = (params.get("source") or {}).get("aliases") or {}
    files = scan_source(source_root, category, aliases)
    if not files:
        folders = ", ".join(sorted(_folder_names(category, aliases)))
        raise IngestError(f"{source_root}: no .jpg/.jpeg/.png/.webp images for category {category!r} "
                          f"in folders named {folders}; add photos there or extend "
                          f"source.aliases.{category} in params.yaml")

    image_dir, mask_dir = data_dir / "raw" / category, data_dir / "masks" / category
    _empty_folder(image_dir)
    _empty_folder(mask_dir)
    ids = assign_ids(files, source_root)
    tasks = [(path, image_dir / f"{item_id}.png", mask_dir / f"{item_id}.png", settings)
             for path, item_id in zip(files, ids)]
    outcomes = _run_tasks(tasks, jobs=jobs, label=f"ingest {category}")

    report = IngestReport(category=category, source=str(source_root), found=len(files), jobs=jobs)
    lookup = _feed_lookup(feed or {})
    rows: list[dict[str, Any]] = []
    methods: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for path, item_id, outcome in zip(files, ids, outcomes):
        relative = path.relative_to(source_root).as_posix()
        if isinstance(outcome, ImageRejected):
            log.warning("skipped %s: %s", relative, outcome)
            reasons[outcome.reason] += 1
            report.skipped_files.append({"file": relative, "reason": str(outcome)})
            continue
        methods[outcome.method] += 1
        product = lookup.get(item_id) or lookup.get(path.stem) or {}
        rows.append({
            "id": item_id, "category": category,
            "image": f"raw/{category}/{item_id}.png", "mask": f"masks/{category}/{item_id}.png",
            "source": relative, "sha256": outcome.sha256,
            "width": outcome.width, "height": outcome.height,
            "mask_fraction": outcome.mask_fraction, "isolation": outcome.isolation,
            "title": product.get("title", ""), "color": product.get("color", ""), "split": "",
        })
    write_manifest(image_dir / "manifest.csv", rows)

    report.ingested = len(rows)
    report.skipped = sum(reasons.values())
    report.skipped_by_reason = dict(sorted(reasons.items()))
    report.isolation_failed = sum(1 for row in rows if row["isolation"] == ISOLATION_FAILED)
    report.isolation_failure_rate = round(report.isolation_failed / len(rows), 4) if rows else 0.0
    report.isolation_methods = dict(sorted(methods.items()))
    report.seconds = round(time.perf_counter() - started, 2)
    report.images_per_second = round(len(files) / report.seconds, 2) if report.seconds else 0.0
    return report


# --- helpers ---------------------------------------------------------------------------------

Task = tuple[Path, Path, Path, IngestSettings]


def _run_tasks(tasks: list[Task], *, jobs: int, label: str) -> list[ImageOutcome | ImageRejected]:
    """Ingest images in order, in a process pool when jobs > 1, with a progress bar."""
    with logging_redirect_tqdm():
        if jobs <= 1 or len(tasks) < 2:
            return [_ingest_task(task) for task in tqdm(tasks, desc=label, unit="img", disable=None)]
        # spawn, not fork: a child forked after OpenCV ran threads can inherit a held lock and hang
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes=min(jobs, len(tasks)), initializer=_init_worker) as pool:
            results = pool.imap(_ingest_task, tasks, chunksize=4)
            return list(tqdm(results, total=len(tasks), desc=label, unit="img", disable=None))


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would oversubscribe


def _ingest_task(task: Task) -> ImageOutcome | ImageRejected:
    """Never raises: a file that breaks anything becomes a rejection with the reason."""
    source, image_out, mask_out, settings = task
    try:
        return ingest_image(source, image_out, mask_out, settings)
    except ImageRejected as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - one odd file must not stop the stage
        return ImageRejected("processing error", f"{type(exc).__name__}: {exc}")


def _folder_names(category: str, aliases: Aliases) -> set[str]:
    if isinstance(aliases, Mapping):
        names = aliases.get(category) or []
    else:
        names = aliases or []
    return {category.lower(), *(str(name).lower() for name in names)}


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(path for path in folder.iterdir()
                      if path.is_dir() and not path.name.startswith("."))
    except OSError:
        return []


def _empty_folder(folder: Path) -> None:
    """Remove a stage output folder and recreate it empty: outputs reflect exactly this run."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _feed_column_name(name: str) -> str:
    name = name.strip().lower().replace(" ", "_")
    name = name.removeprefix("g:")
    return FEED_COLUMN_ALIASES.get(name, name)


def _feed_row(names: Sequence[str], values: Sequence[str]) -> FeedRow:
    row = {column: "" for column in FEED_COLUMNS}
    for name, value in zip(names, values):
        if name in row and not row[name]:
            row[name] = value.strip()
    return row


def _feed_lookup(feed: Mapping[str, Mapping[str, str]]) -> dict[str, Mapping[str, str]]:
    """Feed rows by id, and by their image file's stem for feeds whose ids differ from files."""
    lookup: dict[str, Mapping[str, str]] = {}
    for item_id, row in feed.items():
        stem = Path(str(row.get("image_link", "")).split("?")[0]).stem
        if stem:
            lookup.setdefault(stem, row)
    lookup.update(feed)
    return lookup
