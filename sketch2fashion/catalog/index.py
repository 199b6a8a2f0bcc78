"""Embedded vector index over the shop catalog: exact or FAISS-HNSW search, filters, atomic on-disk versions.

Why this shape:
- Every shopper query names a garment category, so each category gets its own sub-index; a category
  filter then cannot leak other categories by construction (no post-filter can miss).
- Small sub-indexes are searched exactly (one matmul beats a graph walk below ~20k rows); big ones use
  HNSW with the inner-product metric (vectors are L2-normalised, so inner product = cosine).
- Brand / price filters are post-filters with adaptive over-fetch, and an exact scan of the allowed rows
  when the filter is so selective that over-fetching would cost more than scanning.
- A rebuild writes a complete new version folder and then atomically replaces the ``CURRENT`` pointer
  (temp file + ``os.replace``); readers load whole versions and swap one reference, so a query never sees
  a half-written index and never fails during a rebuild.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)

POINTER_NAME = "CURRENT"
VERSIONS_DIR = "versions"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------------------
# Public value types
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    """One search result: the product and its cosine similarity to the query."""

    id: str
    score: float
    category: str
    brand: str
    price: float


@dataclass(frozen=True)
class HnswParams:
    """FAISS HNSW knobs: M (graph degree), efConstruction (build quality), efSearch (query recall/speed)."""

    M: int = 32
    ef_construction: int = 200
    ef_search: int = 64


@dataclass(frozen=True)
class IndexConfig:
    """When to go approximate and how hard to try when post-filters reject candidates."""

    exact_threshold: int = 20_000  # sub-indexes smaller than this are searched exactly
    hnsw: HnswParams = field(default_factory=HnswParams)
    exact_fallback_rows: int = 4_096  # a filter allowing at most this many rows is answered by an exact scan
    overfetch_growth: int = 4  # each retry asks HNSW for this many times more candidates

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> "IndexConfig":
        """Build from a params.yaml-style mapping (unknown keys are an error, to catch typos)."""
        raw = dict(raw or {})
        hnsw = HnswParams(**raw.pop("hnsw", {}))
        return cls(hnsw=hnsw, **raw)


@runtime_checkable
class ProductIndex(Protocol):
    """What the app needs from any catalog index (embedded or Qdrant)."""

    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        *,
        category: str | None = None,
        brand: str | None = None,
        price_min: float | None = None,
        price_max: float | None = None,
    ) -> list[Hit]: ...


# ----------------------------------------------------------------------------------------------------------
# Metadata, columnar so filters are vectorised
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProductTable:
    """Product metadata as columns; categories and brands are small integer codes into vocabularies."""

    ids: np.ndarray  # (n,) str
    category_codes: np.ndarray  # (n,) int32
    brand_codes: np.ndarray  # (n,) int32
    prices: np.ndarray  # (n,) float64
    categories: tuple[str, ...]
    brands: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_columns(
        cls, ids: Sequence[str], categories: Sequence[str], brands: Sequence[str], prices: Sequence[float]
    ) -> "ProductTable":
        """Encode string columns; raises on duplicate ids (a product must map to exactly one vector)."""
        id_arr = np.asarray(ids, dtype=str)
        if len(np.unique(id_arr)) != len(id_arr):
            raise ValueError("product ids must be unique")
        cat_vocab, cat_codes = np.unique(np.asarray(categories, dtype=str), return_inverse=True)
        brand_vocab, brand_codes = np.unique(np.asarray(brands, dtype=str), return_inverse=True)
        return cls(
            ids=id_arr,
            category_codes=cat_codes.astype(np.int32).ravel(),
            brand_codes=brand_codes.astype(np.int32).ravel(),
            prices=np.asarray(prices, dtype=np.float64),
            categories=tuple(cat_vocab.tolist()),
            brands=tuple(brand_vocab.tolist()),
        )

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> "ProductTable":
        """From dicts with keys id, category, brand, price (the feed's natural shape)."""
        return cls.from_columns(
            [str(r["id"]) for r in records],
            [str(r["category"]) for r in records],
            [str(r.get("brand", "")) for r in records],
            [float(r.get("price", math.nan)) for r in records],
        )

    def take(self, order: np.ndarray) -> "ProductTable":
        """Rows reordered (used to make each category a contiguous slice)."""
        return ProductTable(
            self.ids[order], self.category_codes[order], self.brand_codes[order], self.prices[order],
            self.categories, self.brands,
        )

    def hit(self, row: int, score: float) -> Hit:
        return Hit(
            id=str(self.ids[row]),
            score=float(score),
            category=self.categories[self.category_codes[row]],
            brand=self.brands[self.brand_codes[row]],
            price=float(self.prices[row]),
        )


def as_product_table(metadata: ProductTable | Sequence[Mapping[str, Any]]) -> ProductTable:
    return metadata if isinstance(metadata, ProductTable) else ProductTable.from_records(metadata)


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """float32, C-contiguous, unit L2 rows: inner product is then cosine similarity."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest scores, best first (argpartition keeps it O(n))."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def recall_at_k(found: Sequence[Sequence[str]], truth: Sequence[Sequence[str]], k: int = 10) -> float:
    """Mean share of the exact top-k that the approximate top-k recovered (1.0 = identical sets)."""
    ratios = []
    for got, want in zip(found, truth, strict=True):
        want_k = set(list(want)[:k])
        if want_k:
            ratios.append(len(want_k & set(list(got)[:k])) / len(want_k))
    return float(np.mean(ratios)) if ratios else 1.0


# ----------------------------------------------------------------------------------------------------------
# One category's sub-index
# ----------------------------------------------------------------------------------------------------------
class Partition:
    """Rows [start, stop) of the category-sorted catalog, searched exactly or through an HNSW graph."""

    def __init__(self, vectors: np.ndarray, start: int, hnsw: Any | None = None) -> None:
        self.vectors = vectors  # view of this category's rows
        self.start = start
        self.hnsw = hnsw

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def kind(self) -> str:
        return "exact" if self.hnsw is None else "hnsw"

    def search_exact(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the partition, or over its ``allowed`` local rows only."""
        if allowed is None:
            scores = self.vectors @ query
            best = top_k(scores, k)
            return scores[best], best + self.start
        local = np.flatnonzero(allowed)
        scores = self.vectors[local] @ query
        best = top_k(scores, k)
        return scores[best], local[best] + self.start

    def search_graph(self, query: np.ndarray, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k via HNSW; efSearch is per call so concurrent readers never share mutable state."""
        import faiss

        k = min(k, len(self))
        params = faiss.SearchParametersHNSW(efSearch=max(ef_search, k))
        scores, local = self.hnsw.search(query[None, :], k, params=params)
        keep = local[0] >= 0  # -1 pads when the graph walk found fewer than k
        return scores[0][keep], local[0][keep] + self.start

    def search(self, query: np.ndarray, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        if self.hnsw is None:
            return self.search_exact(query, k)
        return self.search_graph(query, k, ef_search)


def build_hnsw(vectors: np.ndarray, params: HnswParams) -> Any:
    import faiss

    graph = faiss.IndexHNSWFlat(vectors.shape[1], params.M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = params.ef_construction
    graph.add(vectors)
    return graph


# ----------------------------------------------------------------------------------------------------------
# The in-memory index (immutable once built)
# ----------------------------------------------------------------------------------------------------------
class VectorIndex:
    """Immutable searchable snapshot: category-sorted vectors, metadata columns, one Partition per category."""

    def __init__(self, vectors: np.ndarray, table: ProductTable, partitions: dict[int, Partition], config: IndexConfig,
                 attachments: Mapping[str, bytes] | None = None) -> None:
        self.vectors = vectors
        self.table = table
        self.partitions = partitions
        self.config = config
        # Files published in the same version (encoder weights, product cards): they swap with the vectors.
        self.attachments: dict[str, bytes] = dict(attachments or {})
        self._rows: dict[str, int] | None = None

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of product ids (-1 where unknown): for exact scores of extra candidates."""
        if self._rows is None:
            self._rows = {str(pid): i for i, pid in enumerate(self.table.ids)}
        return np.array([self._rows.get(str(pid), -1) for pid in ids], np.int64)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.table)

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        metadata: ProductTable | Sequence[Mapping[str, Any]],
        config: IndexConfig | None = None,
    ) -> "VectorIndex":
        """Sort rows by category, then give each category an exact or HNSW sub-index by its size."""
        config = config or IndexConfig()
        table = as_product_table(metadata)
        vectors = normalise_rows(vectors)
        if vectors.ndim != 2 or len(vectors) != len(table):
            raise ValueError(f"need one vector per product: vectors {vectors.shape}, products {len(table)}")
        order = np.argsort(table.category_codes, kind="stable")
        vectors, table = np.ascontiguousarray(vectors[order]), table.take(order)
        partitions = {}
        for code, (start, stop) in category_ranges(table.category_codes).items():
            part_vectors = vectors[start:stop]
            graph = build_hnsw(part_vectors, config.hnsw) if len(part_vectors) >= config.exact_threshold else None
            partitions[code] = Partition(part_vectors, start, graph)
        return cls(vectors, table, partitions, config)

    # -- search ---------------------------------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        *,
        category: str | None = None,
        brand: str | None = None,
        price_min: float | None = None,
        price_max: float | None = None,
        exact: bool = False,
        ef_search: int | None = None,
    ) -> list[Hit]:
        """Top-k products by cosine similarity; the category filter is exact by construction."""
        if k <= 0 or len(self) == 0:
            return []
        q = normalise_rows(np.asarray(query).reshape(-1))
        if q.shape[0] != self.dimension:
            raise ValueError(f"query has dimension {q.shape[0]}, index has {self.dimension}")
        parts = self._partitions_for(category)
        brand_code = self._brand_code(brand)
        if brand is not None and brand_code is None:
            return []
        ef = ef_search or self.config.hnsw.ef_search
        pieces = [self._search_partition(p, q, k, brand_code, price_min, price_max, exact, ef) for p in parts]
        scores = np.concatenate([s for s, _ in pieces]) if pieces else np.empty(0, np.float32)
        rows = np.concatenate([r for _, r in pieces]) if pieces else np.empty(0, np.int64)
        best = top_k(scores, k)
        return [self.table.hit(int(rows[i]), float(scores[i])) for i in best]

    def _partitions_for(self, category: str | None) -> list[Partition]:
        if category is None:
            return list(self.partitions.values())
        try:
            code = self.table.categories.index(category)
        except ValueError:
            return []
        return [self.partitions[code]] if code in self.partitions else []

    def _brand_code(self, brand: str | None) -> int | None:
        if brand is None:
            return None
        try:
            return self.table.brands.index(brand)
        except ValueError:
            return None

    def _allowed(self, part: Partition, brand_code: int | None, price_min: float | None, price_max: float | None) -> np.ndarray | None:
        """Boolean mask over the partition's rows, or None when nothing beyond the category is filtered."""
        if brand_code is None and price_min is None and price_max is None:
            return None
        return self._column_mask(slice(part.start, part.start + len(part)), brand_code, price_min, price_max)

    def row_mask(self, *, category: str | None = None, brand: str | None = None,
                 price_min: float | None = None, price_max: float | None = None) -> np.ndarray:
        """Boolean mask over all rows that pass the filters `search` applies (for signals scored outside it)."""
        brand_code = self._brand_code(brand)
        mask = self._column_mask(slice(None), brand_code, price_min, price_max)
        if brand is not None and brand_code is None:  # a brand the catalog does not carry
            mask[:] = False
        if category is not None:
            code = self.table.categories.index(category) if category in self.table.categories else -1
            mask &= self.table.category_codes == code
        return mask

    def _column_mask(self, rows: slice, brand_code: int | None, price_min: float | None, price_max: float | None) -> np.ndarray:
        mask = np.ones(len(self.table.ids[rows]), dtype=bool)
        if brand_code is not None:
            mask &= self.table.brand_codes[rows] == brand_code
        if price_min is not None:
            mask &= self.table.prices[rows] >= price_min  # NaN (no price) never passes a price filter
        if price_max is not None:
            mask &= self.table.prices[rows] <= price_max
        return mask

    def _search_partition(
        self, part: Partition, q: np.ndarray, k: int, brand_code: int | None,
        price_min: float | None, price_max: float | None, exact: bool, ef: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        allowed = self._allowed(part, brand_code, price_min, price_max)
        if allowed is None:
            return part.search_exact(q, k) if exact else part.search(q, k, ef)
        n_allowed = int(allowed.sum())
        if n_allowed == 0:
            return np.empty(0, np.float32), np.empty(0, np.int64)
        if exact or part.hnsw is None or n_allowed <= self.config.exact_fallback_rows:
            return part.search_exact(q, k, allowed)
        return self._overfetch(part, q, k, allowed, n_allowed, ef)

    def _overfetch(self, part: Partition, q: np.ndarray, k: int, allowed: np.ndarray, n_allowed: int, ef: int) -> tuple[np.ndarray, np.ndarray]:
        """Ask HNSW for more candidates until k pass the filter; scan exactly once that gets too costly."""
        want = min(k, n_allowed)
        fetch = int(math.ceil(k * len(part) / n_allowed * 1.5)) + k  # expected survivors ~ 1.5 k
        while fetch <= len(part) // 4:
            scores, rows = part.search_graph(q, fetch, max(ef, fetch))
            keep = allowed[rows - part.start]
            if keep.sum() >= want:
                return scores[keep][:k], rows[keep][:k]
            fetch *= self.config.overfetch_growth
        return part.search_exact(q, k, allowed)


def category_ranges(sorted_codes: np.ndarray) -> dict[int, tuple[int, int]]:
    """Contiguous [start, stop) row range of each category code in a code-sorted column."""
    if len(sorted_codes) == 0:
        return {}
    codes, starts = np.unique(sorted_codes, return_index=True)
    stops = np.append(starts[1:], len(sorted_codes))
    return {int(c): (int(a), int(b)) for c, a, b in zip(codes, starts, stops)}


# ----------------------------------------------------------------------------------------------------------
# On-disk versions
# ----------------------------------------------------------------------------------------------------------
class IncompleteVersionError(RuntimeError):
    """A version folder without a valid manifest (or with files that do not match it): never served."""


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_durably(path: Path, data: bytes) -> None:
    """Write via a temp file + fsync + os.replace so ``path`` is either absent or complete."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def new_version_name() -> str:
    """Time-sortable and unique even for two writers in the same nanosecond."""
    return f"v{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


class IndexWriter:
    """Writes complete index versions and publishes them by atomically replacing the CURRENT pointer."""

    def __init__(self, config: IndexConfig | None = None) -> None:
        self.config = config or IndexConfig()

    def build(
        self,
        vectors: np.ndarray,
        metadata: ProductTable | Sequence[Mapping[str, Any]],
        out_dir: str | Path,
        *,
        keep: int | None = None,
        attachments: Mapping[str, bytes] | None = None,
    ) -> str:
        """Build, write, verify and publish a new version; returns its name. ``keep`` also runs gc.

        ``attachments`` (file name -> bytes) are published inside the same version, checksummed with it.
        """
        index = VectorIndex.build(vectors, metadata, self.config)
        index.attachments.update(attachments or {})
        return self.write(index, out_dir, keep=keep)

    def write(self, index: VectorIndex, out_dir: str | Path, *, keep: int | None = None) -> str:
        out_dir = Path(out_dir)
        versions = out_dir / VERSIONS_DIR
        versions.mkdir(parents=True, exist_ok=True)
        name = new_version_name()
        staging = versions / f".staging-{name}"
        staging.mkdir()
        try:
            files = self._write_payload(index, staging)
            manifest = self._manifest(index, name, files, staging)
            write_durably(staging / MANIFEST_NAME, json.dumps(manifest, indent=1).encode())
            fsync_dir(staging)
            os.rename(staging, versions / name)  # folder appears complete or not at all
            fsync_dir(versions)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        write_durably(out_dir / POINTER_NAME, name.encode())
        fsync_dir(out_dir)
        if keep is not None:
            collect_garbage(out_dir, keep=keep)
        return name

    def _write_payload(self, index: VectorIndex, folder: Path) -> list[str]:
        import faiss

        table = index.table
        np.save(folder / "vectors.npy", index.vectors)
        np.save(folder / "ids.npy", table.ids)
        np.savez(folder / "columns.npz", category_codes=table.category_codes, brand_codes=table.brand_codes, prices=table.prices)
        files = ["vectors.npy", "ids.npy", "columns.npz"]
        for fname, data in index.attachments.items():
            if fname in files or fname == MANIFEST_NAME or Path(fname).name != fname or fname.startswith(("hnsw-", ".")):
                raise ValueError(f"attachment name {fname!r} is reserved or not a plain file name")
            (folder / fname).write_bytes(data)
            files.append(fname)
        for code, part in index.partitions.items():
            if part.hnsw is not None:
                fname = f"hnsw-{code}.faiss"
                faiss.write_index(part.hnsw, str(folder / fname))
                files.append(fname)
        for fname in files:
            with open(folder / fname, "rb+") as fh:
                os.fsync(fh.fileno())
        return files

    def _manifest(self, index: VectorIndex, name: str, files: list[str], folder: Path) -> dict[str, Any]:
        file_info = {f: {"bytes": (folder / f).stat().st_size, "sha256": sha256_file(folder / f)} for f in files}
        checksum = hashlib.sha256("".join(f + file_info[f]["sha256"] for f in sorted(files)).encode()).hexdigest()
        return {
            "format": FORMAT_VERSION,
            "version": name,
            "dimension": index.dimension,
            "count": len(index),
            "created_unix": time.time(),
            "config": asdict(index.config),
            "categories": list(index.table.categories),
            "brands": list(index.table.brands),
            "partitions": [
                {"code": code, "category": index.table.categories[code], "start": p.start, "stop": p.start + len(p),
                 "kind": p.kind, "file": f"hnsw-{code}.faiss" if p.hnsw is not None else None}
                for code, p in sorted(index.partitions.items())
            ],
            "files": file_info,
            "attachments": sorted(index.attachments),
            "checksum": checksum,
        }


def read_pointer(index_dir: Path) -> str | None:
    try:
        name = (index_dir / POINTER_NAME).read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def read_manifest(version_dir: Path, *, verify_checksum: bool) -> dict[str, Any]:
    """The manifest, only if the version is complete; raises IncompleteVersionError otherwise."""
    try:
        manifest = json.loads((version_dir / MANIFEST_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as err:
        raise IncompleteVersionError(f"{version_dir}: no valid manifest ({err})") from err
    required = {"format", "dimension", "count", "files", "checksum", "partitions"}
    if not required <= manifest.keys() or manifest["format"] != FORMAT_VERSION:
        raise IncompleteVersionError(f"{version_dir}: manifest lacks {sorted(required - manifest.keys())} or has another format")
    for fname, info in manifest["files"].items():
        path = version_dir / fname
        if not path.is_file() or path.stat().st_size != info["bytes"]:
            raise IncompleteVersionError(f"{version_dir}: {fname} missing or truncated")
        if verify_checksum and sha256_file(path) != info["sha256"]:
            raise IncompleteVersionError(f"{version_dir}: {fname} checksum mismatch")
    return manifest


def load_version(version_dir: Path, *, verify_checksum: bool = True, config: IndexConfig | None = None) -> VectorIndex:
    """Load a complete version (vectors memory-mapped; HNSW graphs read into RAM)."""
    import faiss

    manifest = read_manifest(version_dir, verify_checksum=verify_checksum)
    vectors = np.load(version_dir / "vectors.npy", mmap_mode="r")
    columns = np.load(version_dir / "columns.npz", allow_pickle=False)
    table = ProductTable(
        ids=np.load(version_dir / "ids.npy", allow_pickle=False),
        category_codes=columns["category_codes"], brand_codes=columns["brand_codes"], prices=columns["prices"],
        categories=tuple(manifest["categories"]), brands=tuple(manifest["brands"]),
    )
    if vectors.shape != (manifest["count"], manifest["dimension"]) or len(table) != manifest["count"]:
        raise IncompleteVersionError(f"{version_dir}: shapes disagree with the manifest")
    partitions = {}
    for p in manifest["partitions"]:
        graph = faiss.read_index(str(version_dir / p["file"])) if p["file"] else None
        partitions[int(p["code"])] = Partition(vectors[p["start"]:p["stop"]], int(p["start"]), graph)
    stored = manifest.get("config") or {}
    attachments = {name: (version_dir / name).read_bytes() for name in manifest.get("attachments", [])}
    return VectorIndex(vectors, table, partitions, config or IndexConfig.from_dict(stored), attachments)


def collect_garbage(index_dir: str | Path, *, keep: int = 2, stale_staging_s: float = 3600.0) -> list[str]:
    """Delete all but the newest ``keep`` versions (never the current one) and abandoned staging folders."""
    index_dir = Path(index_dir)
    versions = index_dir / VERSIONS_DIR
    if not versions.is_dir():
        return []
    current = read_pointer(index_dir)
    names = sorted((p.name for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)
    doomed = [n for n in names[max(keep, 1):] if n != current]
    now = time.time()
    doomed += [p.name for p in versions.iterdir() if p.name.startswith(".staging-") and now - p.stat().st_mtime > stale_staging_s]
    for name in doomed:
        shutil.rmtree(versions / name, ignore_errors=True)
    return doomed


class IndexReader:
    """Serves queries from the published version; ``refresh()`` swaps in a newer one without blocking queries."""

    def __init__(self, index_dir: str | Path, *, verify_checksum: bool = True, config: IndexConfig | None = None) -> None:
        self.index_dir = Path(index_dir)
        self.verify_checksum = verify_checksum
        self.config = config
        self._lock = threading.Lock()  # serialises refreshes only; searches never take it
        self._version: str | None = None
        self._index: VectorIndex | None = None
        if not self.refresh():
            raise FileNotFoundError(f"no complete index version published under {self.index_dir}")

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def index(self) -> VectorIndex:
        assert self._index is not None
        return self._index

    @property
    def dimension(self) -> int:
        return self.index.dimension

    def __len__(self) -> int:
        return len(self.index)

    def refresh(self) -> bool:
        """Load the version CURRENT points to if it changed; keep serving the old one if it is incomplete.

        Returns True when an index is being served after the call and it is the pointer's version.
        """
        with self._lock:
            name = read_pointer(self.index_dir)
            if name is None:
                return False
            if name == self._version:
                return True
            try:
                fresh = load_version(self.index_dir / VERSIONS_DIR / name, verify_checksum=self.verify_checksum, config=self.config)
            except Exception as err:  # noqa: BLE001 - incomplete, gc'd mid-load, corrupt: never stop serving
                log.warning("index version %s not loaded, still serving %s: %s", name, self._version, err)
                return False
            self._index, self._version = fresh, name  # single reference swap: in-flight queries keep the old one
            return True

    def search(self, query: np.ndarray, k: int = 10, **filters: Any) -> list[Hit]:
        """Thread-safe: reads one immutable snapshot reference, then searches it."""
        return self.index.search(query, k, **filters)


def open_index(location: str | Path, *, collection: str = "products", **kwargs: Any) -> ProductIndex:
    """Qdrant for http(s):// locations (the scale-out path), else the embedded on-disk index."""
    text = str(location)
    if text.startswith(("http://", "https://")):
        from sketch2fashion.catalog.qdrant_index import QdrantIndex

        return QdrantIndex(text, collection, **kwargs)
    return IndexReader(location, **kwargs)
