"""`Catalog`: the one interface the service and the evaluation use to search a shop's products.

An index version (see `catalog.index`) is self-contained: besides the vectors it carries the
encoder that made them (`encoder.pt`), the product cards with their measured colours
(`products.json`) and the vector layout (`search.json`). Loading one version therefore can
never pair vectors with the wrong encoder, and `refresh()` swaps all of it in one reference.

Search = one inner-product query carrying the image and colour signals (`catalog.features`),
then, when the shopper typed words, a re-rank of the candidates with BM25 and colour words.
Vectors live in the embedded FAISS/exact index, or in a Qdrant server when `catalog.url` is
http(s):// (the cards and encoder still come from the published local version).
"""
from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sketch2fashion.catalog.colour import dominant_colours, garment_mask_from_photo
from sketch2fashion.catalog.embedder import ImageEncoder, embed_images, load_encoder
from sketch2fashion.catalog.features import (
    FeatureLayout, QueryParts, hint_colour, hints_colour, photo_colour, product_vectors, query_vector,
)
from sketch2fashion.catalog.garment import garment_on_white
from sketch2fashion.catalog.index import (
    VERSIONS_DIR, IndexConfig, IndexWriter, VectorIndex, load_version, read_pointer,
)
from sketch2fashion.catalog.text import TextIndex, colour_word_match, colour_words
from sketch2fashion.catalog.tuned_weights import read_tuned_weights
from sketch2fashion.imaging.hints import Hints
from sketch2fashion.imaging.io import load_rgb

ENCODER_FILE = "encoder.pt"
ENCODER_INFO_FILE = "encoder.json"
"""Which registered encoder version made the vectors (absent from versions built from a plain file)."""
CARDS_FILE = "products.json"
LAYOUT_FILE = "search.json"
DEFAULT_WEIGHTS = {"sketch": 1.0, "photo": 1.0, "hint_colour": 0.5, "photo_colour": 0.5,
                   "text": 0.3, "colour_words": 0.3}
TEXT_SIGNALS = ("text", "colour_words")


class CatalogError(RuntimeError):
    """The catalog cannot answer: no index published, or one that does not load."""


@dataclass(frozen=True)
class ProductHit:
    """One product card in a search answer (the public API's fields)."""

    id: str
    title: str
    link: str
    image_link: str
    price: float | None
    currency: str
    category: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CatalogItem:
    """A product to index: its card fields and where its photo is."""

    id: str
    title: str
    link: str
    image_link: str
    price: float | None
    currency: str
    brand: str
    category: str
    image_path: Path
    description: str = ""
    color: str = ""


@dataclass(frozen=True)
class SearchSettings:
    """params.yaml `search:` and `catalog:` as one object (paths resolved against the project)."""

    index_dir: Path
    url: str | None = None
    collection: str = "products"
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    candidates: int = 200
    colour_bins: tuple[int, int, int] = (4, 8, 8)
    index: IndexConfig = field(default_factory=IndexConfig)
    keep_versions: int = 2
    tuned_weights: Path | None = None
    """The tune_search stage's weights file; its image-signal weights replace `weights`' when it exists."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any], project_root: Path | None = None) -> SearchSettings:
        root = Path(project_root or Path.cwd())
        catalog = dict(params.get("catalog") or {})
        search = dict(params.get("search") or {})
        weights = {**DEFAULT_WEIGHTS, **(search.get("weights") or {})}
        unknown = set(weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"params.yaml search.weights: unknown signal(s) {sorted(unknown)}; "
                             f"known: {sorted(DEFAULT_WEIGHTS)}")
        index_dir = Path(catalog.get("index", "data/catalog/index"))
        url = catalog.get("url") or None
        return cls(
            index_dir=index_dir if index_dir.is_absolute() else root / index_dir,
            url=str(url) if url else None,
            collection=str(catalog.get("collection", "products")),
            weights={k: float(v) for k, v in weights.items()},
            candidates=int(search.get("candidates", 200)),
            colour_bins=tuple(int(b) for b in (search.get("colour") or {}).get("bins", (4, 8, 8))),
            index=IndexConfig.from_dict(search.get("index")),
            keep_versions=int(search.get("keep_versions", 2)),
            tuned_weights=root / search["tuned_weights"] if search.get("tuned_weights") else None,
        ).with_tuned_weights()

    def with_tuned_weights(self) -> SearchSettings:
        """These settings with the tuned image-signal weights over params.yaml's, when the file exists."""
        from dataclasses import replace

        tuned = read_tuned_weights(self.tuned_weights) if self.tuned_weights else None
        return self if tuned is None else replace(self, weights={**self.weights, **tuned})


# ------------------------------------------------------------------------------------------------
# Building an index version
# ------------------------------------------------------------------------------------------------
def items_from_store(store_path: str | Path) -> list[CatalogItem]:
    """Every product of an ingested catalog store (`s2f catalog ingest`)."""
    from sketch2fashion.catalog.store import CatalogStore

    if not Path(store_path).is_file():
        raise FileNotFoundError(f"{store_path}: no catalog store; run `s2f catalog ingest FEED` first")
    with CatalogStore(store_path) as store:
        return [CatalogItem(id=p.id, title=p.title, link=p.link, image_link=p.image_link,
                            price=None if p.price is None else float(p.price), currency=p.currency,
                            brand=p.brand, category=p.category, image_path=Path(p.image_path),
                            description=p.description, color=p.color)
                for p in store.products()]


def items_from_manifest(data_dir: str | Path) -> list[CatalogItem]:
    """A catalog of the ingested training photos themselves (for evaluating on a photo set without a feed)."""
    from sketch2fashion.data.manifest import read_manifest

    data_dir = Path(data_dir)
    rows = read_manifest(data_dir / "manifest.csv")
    return [CatalogItem(id=r["id"], title=r.get("title") or r["category"], link="", image_link=r["image"],
                        price=None, currency="", brand="", category=r["category"],
                        image_path=data_dir / r["image"], color=r.get("color") or "")
            for r in rows]


def describe_products(items: Sequence[CatalogItem], encoder: ImageEncoder, layout: FeatureLayout, *,
                      batch_size: int = 64, progress: bool = True) -> tuple[np.ndarray, list[dict]]:
    """Catalog vectors and cards (with measured dominant colours), in `items` order."""
    vectors = np.zeros((len(items), layout.dim), np.float32)
    cards: list[dict] = []
    bar = tqdm(total=len(items), desc="index: embed products", unit="img", disable=not progress)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        photos = [garment_on_white(load_rgb(item.image_path)) for item in chunk]
        colours = np.stack([photo_colour(photo, layout.colour_bins) for photo in photos])
        vectors[start:start + len(chunk)] = product_vectors(embed_images(encoder, photos), colours)
        for item, photo in zip(chunk, photos):
            card = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(item).items()}
            card["colours"] = [[name, round(share, 4)]
                               for name, share in dominant_colours(photo, garment_mask_from_photo(photo))]
            cards.append(card)
        bar.update(len(chunk))
    bar.close()
    return vectors, cards


def build_catalog_index(params: Mapping[str, Any], *, project_root: Path | None = None,
                        items: Sequence[CatalogItem] | None = None, encoder_path: str | Path | None = None,
                        encoder_info: Mapping[str, Any] | None = None, progress: bool = True) -> str:
    """Embed the catalog and publish a new index version atomically; returns its name.

    Defaults: products from the store at `catalog.store`, encoder at `models/embedder.pt`.
    `encoder_info` (the registry version of the encoder, `registry/encoder_model.describe`) is
    recorded in the version. With `catalog.url` set, the vectors are also loaded into that Qdrant
    server (alias swap).
    """
    root = Path(project_root or Path.cwd())
    settings = SearchSettings.from_params(params, root)
    if items is None:
        store = Path((params.get("catalog") or {}).get("store", "data/catalog/catalog.sqlite"))
        items = items_from_store(store if store.is_absolute() else root / store)
    if not items:
        raise CatalogError("the catalog has no products to index")
    encoder_path = Path(encoder_path or root / "models" / "embedder.pt")
    if not encoder_path.is_file():
        raise FileNotFoundError(f"{encoder_path}: no encoder; run `dvc repro train_embedder` first")
    encoder = load_encoder(encoder_path)
    layout = FeatureLayout(encoder.dim, settings.colour_bins)
    vectors, cards = describe_products(list(items), encoder, layout, progress=progress)
    metadata = [{"id": c["id"], "category": c["category"], "brand": c["brand"],
                 "price": np.nan if c["price"] is None else c["price"]} for c in cards]
    attachments = {
        ENCODER_FILE: encoder_path.read_bytes(),
        CARDS_FILE: json.dumps(cards).encode(),
        LAYOUT_FILE: json.dumps(layout.to_dict()).encode(),
        **({ENCODER_INFO_FILE: json.dumps(dict(encoder_info)).encode()} if encoder_info is not None else {}),
    }
    name = IndexWriter(settings.index).build(vectors, metadata, settings.index_dir,
                                             keep=settings.keep_versions, attachments=attachments)
    if settings.url:
        from sketch2fashion.catalog.qdrant_index import QdrantIndex

        QdrantIndex(settings.url, settings.collection, hnsw=settings.index.hnsw).build(vectors, metadata)
    return name


# ------------------------------------------------------------------------------------------------
# Searching
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Snapshot:
    """Everything one published version needs to answer a query; replaced as a whole."""

    version: str
    index: VectorIndex
    encoder: ImageEncoder
    layout: FeatureLayout
    cards: dict[str, dict]
    text: TextIndex
    encoder_info: dict[str, Any] | None = None


def _load_snapshot(version_dir: Path, config: IndexConfig) -> _Snapshot:
    index = load_version(version_dir, config=config)
    missing = {ENCODER_FILE, CARDS_FILE, LAYOUT_FILE} - set(index.attachments)
    if missing:
        raise CatalogError(f"{version_dir}: index version lacks {sorted(missing)}; rebuild it with `dvc repro index`")
    payload = torch.load(io.BytesIO(index.attachments[ENCODER_FILE]), map_location="cpu", weights_only=True)
    encoder = ImageEncoder(**payload["config"])
    encoder.load_state_dict(payload["state_dict"])
    cards = {c["id"]: c for c in json.loads(index.attachments[CARDS_FILE])}
    # Documents in the index's row order, so a filter mask over index rows applies to BM25 scores as is.
    text = TextIndex({str(pid): " ".join(str(cards[str(pid)].get(k) or "")
                                         for k in ("title", "description", "brand", "color", "category"))
                      for pid in index.table.ids})
    layout = FeatureLayout.from_dict(json.loads(index.attachments[LAYOUT_FILE]))
    info = json.loads(index.attachments[ENCODER_INFO_FILE]) if ENCODER_INFO_FILE in index.attachments else None
    return _Snapshot(version_dir.name, index, encoder.eval(), layout, cards, text, info)


class Catalog:
    """Thread-safe product search over the published index version; `refresh()` swaps versions."""

    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # serialises refreshes; searches read one snapshot reference
        self._snapshot: _Snapshot | None = None
        self._remote = None
        if settings.url:
            from sketch2fashion.catalog.qdrant_index import QdrantIndex

            self._remote = QdrantIndex(settings.url, settings.collection, hnsw=settings.index.hnsw)
        if not self.refresh():
            raise CatalogError(f"no loadable index version under {settings.index_dir}; "
                               "run `dvc repro index` (or python training/index_catalog.py)")

    @classmethod
    def open(cls, params: Mapping[str, Any] | None = None, *, project_root: Path | None = None) -> Catalog:
        """The catalog configured in params.yaml (read from the project root when not given)."""
        from sketch2fashion.params import load_params

        root = Path(project_root or Path.cwd())
        return cls(SearchSettings.from_params(params if params is not None else load_params(root / "params.yaml"), root))

    @property
    def version(self) -> str:
        return self._current().version

    @property
    def categories(self) -> list[str]:
        return list(self._current().index.table.categories)

    @property
    def encoder_info(self) -> dict[str, Any] | None:
        """The registered encoder version that made the served vectors (None when not recorded)."""
        return self._current().encoder_info

    @property
    def layout(self) -> FeatureLayout:
        return self._current().layout

    @property
    def vector_index(self) -> VectorIndex:
        """The embedded index of the served version (also when vectors are served by Qdrant)."""
        return self._current().index

    def __len__(self) -> int:
        return len(self._current().index)

    def card(self, product_id: str) -> dict | None:
        return self._current().cards.get(product_id)

    def refresh(self) -> bool:
        """Load the version CURRENT names if it is new; a broken one is skipped, the old one kept."""
        with self._lock:
            self._refresh_weights()
            name = read_pointer(self.settings.index_dir)
            if name is None:
                return self._snapshot is not None
            if self._snapshot is not None and name == self._snapshot.version:
                return True
            try:
                fresh = _load_snapshot(self.settings.index_dir / VERSIONS_DIR / name, self.settings.index)
            except Exception as err:  # noqa: BLE001 - never stop serving over a bad version
                import logging

                logging.getLogger(__name__).warning("catalog version %s not loaded: %s", name, err)
                return self._snapshot is not None
            self._snapshot = fresh
            return True

    def _refresh_weights(self) -> None:
        """Pick up weights the tune_search stage wrote since (a broken file keeps the old ones)."""
        try:
            fresh = self.settings.with_tuned_weights()
        except ValueError as err:
            import logging

            logging.getLogger(__name__).warning("tuned weights not loaded: %s", err)
            return
        if fresh.weights != self.settings.weights:
            self.settings = fresh

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            raise CatalogError("no index version loaded")
        return snapshot

    # -- queries ----------------------------------------------------------------------------------
    def encode(self, *, photo: np.ndarray | None = None, sketch: np.ndarray | None = None,
               hints: Hints | None = None) -> QueryParts:
        """Embeddings and colour descriptors of the query images (uint8 RGB, any size)."""
        return self._encode(self._current(), photo=photo, sketch=sketch, hints=hints)

    @staticmethod
    def _encode(snap: _Snapshot, *, photo: np.ndarray | None, sketch: np.ndarray | None,
                hints: Hints | None = None) -> QueryParts:
        """`hints`, when given, are the sketch's colour hints already split from it (any size)."""
        images = [img for img in (sketch, photo) if img is not None]
        embeddings = embed_images(snap.encoder, images) if images else np.zeros((0, snap.layout.embedding_dim))
        bins = snap.layout.colour_bins
        if hints is not None:
            hint_part = hints_colour(hints, bins)
        else:
            hint_part = hint_colour(sketch, bins) if sketch is not None else None
        return QueryParts(
            sketch=embeddings[0] if sketch is not None else None,
            photo=embeddings[-1] if photo is not None else None,
            hint_colour=hint_part,
            photo_colour=photo_colour(photo, bins) if photo is not None else None,
        )

    def search(self, *, photo: np.ndarray | None = None, sketch: np.ndarray | None = None,
               text: str | None = None, category: str | None = None, top_k: int = 10,
               brand: str | None = None, price_min: float | None = None, price_max: float | None = None,
               weights: Mapping[str, float] | None = None) -> list[ProductHit]:
        """Products most like the generated photo / drawing / words, best first (at most top_k)."""
        return self.search_versioned(photo=photo, sketch=sketch, text=text, category=category, top_k=top_k,
                                     brand=brand, price_min=price_min, price_max=price_max, weights=weights)[1]

    def search_versioned(self, *, photo: np.ndarray | None = None, sketch: np.ndarray | None = None,
                         hints: Hints | None = None, photo_is_upload: bool = False,
                         **query: Any) -> tuple[str, list[ProductHit]]:
        """`search`, and the index version that answered: one snapshot encodes, ranks and names
        the cards, so an answer never mixes two versions while `refresh()` swaps them. `hints`:
        the sketch's colour hints when the caller has split them already (see `_encode`).
        `photo_is_upload`: the photo is a shopper's own (POST /search), not a generated one on
        white: it is compared as the catalog's photos are, its garment isolated onto white first."""
        snap = self._current()
        if photo is not None and photo_is_upload:
            photo = garment_on_white(photo)
        parts = self._encode(snap, photo=photo, sketch=sketch, hints=hints)
        return snap.version, self._search_parts(snap, parts, **query)

    def search_parts(self, parts: QueryParts, *, text: str | None = None, category: str | None = None,
                     top_k: int = 10, brand: str | None = None, price_min: float | None = None,
                     price_max: float | None = None, weights: Mapping[str, float] | None = None) -> list[ProductHit]:
        """`search` for already encoded images (the evaluation encodes once, queries per signal mix)."""
        return self._search_parts(self._current(), parts, text=text, category=category, top_k=top_k, brand=brand,
                                  price_min=price_min, price_max=price_max, weights=weights)

    def _search_parts(self, snap: _Snapshot, parts: QueryParts, *, text: str | None = None,
                      category: str | None = None, top_k: int = 10, brand: str | None = None,
                      price_min: float | None = None, price_max: float | None = None,
                      weights: Mapping[str, float] | None = None) -> list[ProductHit]:
        if top_k <= 0:
            return []
        weights = {**self.settings.weights, **(weights or {})}
        text = (text or "").strip()
        use_text = bool(text) and any(weights.get(s, 0.0) for s in TEXT_SIGNALS)
        filters = {"category": category, "brand": brand, "price_min": price_min, "price_max": price_max}
        scores: dict[str, float] = {}
        query = query_vector(snap.layout, parts, weights)
        if query is not None:
            scale = float(np.linalg.norm(query))  # undo the index's query normalisation: scores stay additive
            wanted = max(top_k, self.settings.candidates) if use_text else top_k
            for hit in self._vector_search(snap, query, wanted, filters):
                scores[hit.id] = hit.score * scale * _ROW_NORM
        if use_text:
            self._add_text_scores(snap, scores, query, text, weights, filters)
        if not scores:
            return []
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        return [self._hit(snap, pid, score) for pid, score in ranked]

    def _vector_search(self, snap: _Snapshot, query: np.ndarray, k: int, filters: Mapping[str, Any]):
        if self._remote is not None:
            return self._remote.search(query, k, **filters)
        return snap.index.search(query, k, **filters)

    def _add_text_scores(self, snap: _Snapshot, scores: dict[str, float], query: np.ndarray | None,
                         text: str, weights: Mapping[str, float], filters: Mapping[str, Any]) -> None:
        """BM25 (scaled so the best match is 1) and colour-word matches, added to vector scores.

        Candidates are the vector hits plus the best BM25 matches that pass the filters; the
        latter get their exact vector score from the embedded index (with a server, 0).
        """
        bm25 = snap.text.scores(text)
        bm25 = np.where(snap.index.row_mask(**filters), bm25, 0.0)
        best = float(bm25.max()) if bm25.size else 0.0
        by_id = dict(zip(snap.text.ids, bm25))
        extra = [snap.text.ids[i] for i in np.argsort(-bm25)[: self.settings.candidates] if bm25[i] > 0]
        new = [pid for pid in extra if pid not in scores]
        if new:
            base = np.zeros(len(new), np.float32)
            if query is not None and self._remote is None:
                rows = snap.index.rows_of(new)
                base = np.asarray(snap.index.vectors[rows]) @ query * _ROW_NORM  # rows are stored as d / sqrt(2)
            scores.update(zip(new, (float(b) for b in base)))
        asked = colour_words(text)
        for pid in scores:
            boost = weights.get("text", 0.0) * (by_id.get(pid, 0.0) / best if best > 0 else 0.0)
            if asked:
                colours = [(name, share) for name, share in snap.cards[pid].get("colours", [])]
                boost += weights.get("colour_words", 0.0) * colour_word_match(asked, colours)
            scores[pid] += float(boost)

    @staticmethod
    def _hit(snap: _Snapshot, pid: str, score: float) -> ProductHit:
        card = snap.cards[pid]
        return ProductHit(id=pid, title=card["title"], link=card["link"], image_link=card["image_link"],
                          price=card["price"], currency=card["currency"], category=card["category"],
                          score=round(float(score), 6))


_ROW_NORM = float(np.sqrt(2.0))
"""Norm of every catalog row [e, sqrt(h)] (two unit parts); the index stores rows normalised."""
