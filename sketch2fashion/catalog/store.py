"""The product catalog: a SQLite table of products plus a cached, normalised copy of each photo.

`ingest_feed` makes the store match a feed: new rows are added, changed rows (row or image
bytes) updated, vanished rows deleted. It is idempotent (the same feed twice changes nothing)
and all-or-nothing: every database write of one ingest is one transaction, and new photos are
staged in `images/.pending-<version>/` and moved into place only after the commit, so a crash
leaves the previous catalog whole. A row that cannot be ingested (bad row, broken image) keeps
its previous version, if any; `version` bumps only when something changed, so the search index
can be rebuilt exactly when needed.

One ingest at a time: an ingest holds an exclusive flock on the store's file (freed by the
kernel if the process dies) for its whole run, and a second one fails at once with
`IngestBusy`. The downloads happen before the SQLite write transaction, which is held only to
apply the prepared rows, so readers and the index build never wait on a slow image server.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx

from sketch2fashion.catalog.feed import Product, RowProblem, read_feed
from sketch2fashion.catalog.fetch import (
    DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, FetchError, fetch_image, make_client,
)
from sketch2fashion.imaging.io import (
    ImageRejected, decode_rgb, encode_png, fit_within, write_bytes_atomic,
)

log = logging.getLogger(__name__)

IMAGES_DIR = "images"
PENDING_PREFIX = ".pending-"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    link TEXT NOT NULL,
    image_link TEXT NOT NULL,
    price TEXT,                 -- decimal as text ("24.99"): exact, unlike REAL
    currency TEXT NOT NULL,
    brand TEXT NOT NULL,
    category TEXT NOT NULL,
    color TEXT NOT NULL,
    extra TEXT NOT NULL,        -- JSON object of the feed's other columns (pattern, ...)
    row_sha256 TEXT NOT NULL,   -- of the normalised feed row: detects edited rows
    image_sha256 TEXT NOT NULL, -- of the fetched image bytes: detects replaced photos
    image_path TEXT NOT NULL,   -- normalised PNG, relative to the store's folder
    image_width INTEGER NOT NULL,
    image_height INTEGER NOT NULL,
    changed_in_version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS products_category ON products (category);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_PRODUCT_COLUMNS = (
    "id", "title", "description", "link", "image_link", "price", "currency", "brand", "category",
    "color", "extra", "row_sha256", "image_sha256", "image_path", "image_width", "image_height",
    "changed_in_version",
)


@dataclass(frozen=True, kw_only=True)
class StoredProduct(Product):
    """A catalog product: the feed fields plus where its normalised photo is and its hashes."""

    image_path: Path
    image_sha256: str
    row_sha256: str
    image_width: int
    image_height: int


@dataclass(frozen=True)
class IngestSettings:
    """Limits for one ingest (params.yaml `catalog:`)."""

    allow_private: bool = False
    allow_file_urls: bool = False
    jobs: int = 4
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = DEFAULT_TIMEOUT_S
    max_pixels: int = 50_000_000
    min_side: int = 32
    image_max_side: int = 512


@dataclass
class IngestFeedReport:
    """Ids by outcome; `skipped` holds feed-row problems and images that failed, with reasons."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)
    version: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)

    def summary(self) -> str:
        return (f"catalog v{self.version}: {len(self.added)} added, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged, {len(self.deleted)} deleted, "
                f"{len(self.skipped)} skipped")


class IngestBusy(RuntimeError):
    """Another ingest holds this store's lock; the message says which process."""


class CatalogStore:
    """Products in `<folder>/<file>.sqlite`, photos in `<folder>/images/<id>.png`.

    Readers may use the store while an ingest runs (WAL mode): they see the previous catalog
    until the ingest commits.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.folder = self.path.parent
        self.images_dir = self.folder / IMAGES_DIR
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CatalogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return _read_version(self._db)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM products").fetchone()[0])

    def get(self, product_id: str) -> StoredProduct | None:
        row = self._db.execute("SELECT * FROM products WHERE id = ?", (product_id,)).fetchone()
        return None if row is None else self._product(row)

    def products(self, category: str | None = None) -> list[StoredProduct]:
        if category is None:
            rows = self._db.execute("SELECT * FROM products ORDER BY id")
        else:
            rows = self._db.execute("SELECT * FROM products WHERE category = ? ORDER BY id",
                                    (category,))
        return [self._product(row) for row in rows]

    def image_file(self, product_id: str) -> Path:
        """Where a product's normalised photo lives (ids become safe file names)."""
        return self.images_dir / f"{safe_file_stem(product_id)}.png"

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock at once: one ingest at a time, all or nothing."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _product(self, row: sqlite3.Row) -> StoredProduct:
        return StoredProduct(
            id=row["id"], title=row["title"], link=row["link"], image_link=row["image_link"],
            description=row["description"],
            price=None if row["price"] is None else Decimal(row["price"]),
            currency=row["currency"], brand=row["brand"], category=row["category"],
            color=row["color"], extra=json.loads(row["extra"]),
            image_path=self.folder / row["image_path"], image_sha256=row["image_sha256"],
            row_sha256=row["row_sha256"], image_width=row["image_width"],
            image_height=row["image_height"],
        )


def safe_file_stem(product_id: str) -> str:
    """The id itself when it is a harmless file name, else a sanitised name plus a hash of the
    id, so ids like '../x' or 'a/b' can neither escape the folder nor collide."""
    if _SAFE_NAME.fullmatch(product_id) and not product_id.endswith("."):
        return product_id
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", product_id).strip("._")[:60] or "product"
    return f"{cleaned}-{hashlib.sha256(product_id.encode('utf-8')).hexdigest()[:12]}"


def row_hash(product: Product) -> str:
    """sha256 of the row's normalised fields: equal for the same row however it was spelled."""
    fields = asdict(product)
    fields["price"] = None if product.price is None else str(product.price)
    fields["extra"] = dict(product.extra)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


# -- ingest ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Prepared:
    """One product after its photo was fetched: staged PNG (when new bytes) or a problem."""

    product: Product
    row_sha256: str
    image_sha256: str = ""
    staged: Path | None = None
    width: int = 0
    height: int = 0
    problem: str = ""


def ingest_feed(feed_path: str | Path, store: CatalogStore, *, allow_private: bool = False,
                jobs: int = 4, settings: IngestSettings | None = None,
                client: httpx.Client | None = None) -> IngestFeedReport:
    """Make `store` match the feed; see the module docstring for the guarantees.

    Raises FeedError (from read_feed) before touching anything when the feed is unusable, and
    IngestBusy when another ingest of this store is running.
    `settings` (params.yaml `catalog:`) replaces the `allow_private` and `jobs` shortcuts.
    """
    feed_path = Path(feed_path)
    settings = settings or IngestSettings(allow_private=allow_private, jobs=jobs)
    parsed = read_feed(feed_path)
    report = IngestFeedReport(skipped=list(parsed.problems))
    own_client = client is None
    client = client or make_client()
    pending: Path | None = None
    committed = False
    try:
        with ingest_lock(store):
            with store._write_transaction() as db:  # quick: finish or drop a crashed ingest's files
                version = _read_version(db)
                _recover(store, db, version)
            known = {row["id"]: (row["row_sha256"], row["image_sha256"])
                     for row in store._db.execute("SELECT id, row_sha256, image_sha256 FROM products")}
            pending = store.images_dir / f"{PENDING_PREFIX}{version + 1}"
            shutil.rmtree(pending, ignore_errors=True)
            with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as pool:  # no database lock held
                prepared = list(pool.map(
                    lambda product: _prepare(product, known.get(product.id), store, pending,
                                             feed_path.parent, client, settings),
                    parsed.products))
            # A row we could not ingest this time keeps its previous version: not a deletion.
            keep = {p.product.id for p in prepared} | {p.id for p in parsed.problems if p.id}
            report.deleted = sorted(set(known) - keep)
            with store._write_transaction() as db:
                if _read_version(db) != version:  # only an ingest writes, and we hold the lock
                    raise RuntimeError(f"{store.path}: changed by another writer during this ingest")
                _apply(db, prepared, known, report, parsed.lines, version + 1)
                report.version = version + 1 if report.changed else version
                if report.changed:
                    _write_version(db, report.version)
            committed = True
            _move_into_place(store, pending)
            for product_id in report.deleted:
                store.image_file(product_id).unlink(missing_ok=True)
    except BaseException:
        # Before the commit these files belong to nothing; after it, _recover finishes the move.
        if pending is not None and not committed:
            shutil.rmtree(pending, ignore_errors=True)
        raise
    finally:
        if own_client:
            client.close()
    report.skipped.sort(key=lambda problem: problem.line)
    log.info("%s: %s", feed_path, report.summary())
    return report


@contextmanager
def ingest_lock(store: CatalogStore) -> Iterator[None]:
    """Hold an exclusive flock on the store's SQLite file for one ingest; IngestBusy at once when
    another process holds it. (SQLite locks with fcntl, which flock does not touch; no lock file
    is left beside the store, which is a DVC output.)"""
    with open(store.path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IngestBusy(f"{store.path}: another catalog ingest is running; "
                             "run this one when it has finished") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _prepare(product: Product, known: tuple[str, str] | None, store: CatalogStore,
             pending: Path, base_dir: Path, client: httpx.Client,
             settings: IngestSettings) -> _Prepared:
    """Fetch one photo and, unless row and bytes are as stored, stage its normalised PNG."""
    row_sha256 = row_hash(product)
    try:
        data = fetch_image(product.image_link, base_dir=base_dir, client=client,
                           max_bytes=settings.max_bytes, timeout=settings.timeout,
                           allow_private=settings.allow_private, allow_file_urls=settings.allow_file_urls)
    except FetchError as exc:
        return _Prepared(product, row_sha256, problem=f"image not fetched: {exc}")
    image_sha256 = hashlib.sha256(data).hexdigest()
    cached = store.image_file(product.id)
    if known == (row_sha256, image_sha256) and cached.is_file():
        return _Prepared(product, row_sha256, image_sha256)
    try:
        rgb = decode_rgb(data, max_pixels=settings.max_pixels, min_side=settings.min_side)
    except ImageRejected as exc:
        return _Prepared(product, row_sha256, image_sha256, problem=f"image rejected: {exc}")
    normalised = fit_within(rgb, settings.image_max_side)
    staged = pending / cached.name
    write_bytes_atomic(staged, encode_png(normalised))
    height, width = normalised.shape[:2]
    return _Prepared(product, row_sha256, image_sha256, staged, width, height)


def _apply(db: sqlite3.Connection, prepared: Sequence[_Prepared],
           known: dict[str, tuple[str, str]], report: IngestFeedReport,
           lines: dict[str, int], new_version: int) -> None:
    """The database side of an ingest (inside the caller's transaction); fills the report."""
    for item in prepared:
        product_id = item.product.id
        if item.problem:
            report.skipped.append(RowProblem(lines.get(product_id, 0), product_id, item.problem))
        elif product_id not in known:
            _upsert(db, item, new_version)
            report.added.append(product_id)
        elif known[product_id] != (item.row_sha256, item.image_sha256):
            _upsert(db, item, new_version)
            report.updated.append(product_id)
        else:
            report.unchanged.append(product_id)
    db.executemany("DELETE FROM products WHERE id = ?", [(i,) for i in report.deleted])


def _upsert(db: sqlite3.Connection, item: _Prepared, version: int) -> None:
    product = item.product
    assert item.staged is not None, "a changed product always has a staged image"
    values = (
        product.id, product.title, product.description, product.link, product.image_link,
        None if product.price is None else str(product.price), product.currency, product.brand,
        product.category, product.color, json.dumps(dict(product.extra), sort_keys=True),
        item.row_sha256, item.image_sha256, f"{IMAGES_DIR}/{item.staged.name}", item.width,
        item.height, version,
    )
    placeholders = ", ".join("?" * len(_PRODUCT_COLUMNS))
    db.execute(f"INSERT OR REPLACE INTO products ({', '.join(_PRODUCT_COLUMNS)}) "
               f"VALUES ({placeholders})", values)


def _move_into_place(store: CatalogStore, pending: Path | None) -> None:
    """Staged PNGs -> images/ (os.replace: a reader sees the old file or the new, never half)."""
    if pending is None or not pending.is_dir():
        return
    for staged in pending.iterdir():
        os.replace(staged, store.images_dir / staged.name)
    pending.rmdir()


def _recover(store: CatalogStore, db: sqlite3.Connection, version: int) -> None:
    """Clean up after a crashed ingest (called under the ingest lock, in a write transaction).

    A pending folder of a committed version still has to be moved into place; one of a later
    version never committed and is dropped. Photos of products no longer stored are removed.
    """
    if not store.images_dir.is_dir():
        return
    for folder in sorted(store.images_dir.glob(f"{PENDING_PREFIX}*")):
        number = folder.name.removeprefix(PENDING_PREFIX)
        if number.isdigit() and int(number) <= version:
            _move_into_place(store, folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    referenced = {row[0] for row in db.execute("SELECT image_path FROM products")}
    for image in store.images_dir.glob("*.png"):
        if f"{IMAGES_DIR}/{image.name}" not in referenced:
            image.unlink(missing_ok=True)


def _read_version(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
    return 0 if row is None else int(row[0])


def _write_version(db: sqlite3.Connection, version: int) -> None:
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('version', ?)", (str(version),))
