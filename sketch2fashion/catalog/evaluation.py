"""How well a shopper finds the product they drew: acc@1, acc@10 and MRR per query kind.

For every product of the evaluated split, a shopper's query is simulated from it: its edge map with colour hints
sampled from its photo (at least one hint: a shopper searching by colour drops one), and the
photo the champion colorizer generates from that sketch. The catalog holds every product, of
every split, so the right answer competes with all of them. Each query kind switches on some of
the fused signals (`catalog.features`); the category filter is on, as the shopper picks it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sketch2fashion.catalog.embedder_training import ProductImages
from sketch2fashion.catalog.features import IMAGE_SIGNALS, query_vector
from sketch2fashion.catalog.index import HnswParams, IndexConfig, VectorIndex, recall_at_k
from sketch2fashion.catalog.search import Catalog
from sketch2fashion.colorizer.dataset import hint_options, id_key
from sketch2fashion.colorizer.doodle import EVAL_STYLE, synthesise_doodle
from sketch2fashion.imaging.hints import Hints, compose_sketch, simulate_hints

SEARCH_STREAM = 21
DOODLE_SEARCH_STREAM = 22
"""RNG stream of the search queries' hints (apart from training's and the colorizer eval's)."""
QUERY_KINDS: dict[str, tuple[str, ...] | None] = {
    "sketch": ("sketch",),
    "colour": ("hint_colour",),
    "photo": ("photo",),
    "sketch+colour": ("sketch", "hint_colour"),  # what search can do without a colorizer
    "fused": None,  # every image signal at its params.yaml weight
}
"""Query kind -> the signals it uses (weight 1 each), or None for the configured fusion."""

Generate = Callable[[str, np.ndarray, Hints], np.ndarray]
"""(category, edges, hints) -> generated photo (uint8 RGB): the champion colorizer."""


@dataclass(frozen=True)
class ShopperQuery:
    """One simulated shopper: the product they want and what they drew."""

    product_id: str
    category: str
    edges: np.ndarray
    hints: Hints

    @property
    def sketch(self) -> np.ndarray:
        return compose_sketch(self.edges, self.hints)


def shopper_queries(products: Sequence[ProductImages], categories: Mapping[str, str], *,
                    seed: int, hint_params: Mapping, doodles: bool = False) -> list[ShopperQuery]:
    """A fixed query per product (hints from (seed, id)), reproducible run to run: its edge map,
    or with `doodles` a quick doodle of it in the evaluation style (colorizer/doodle.py)."""
    params = hint_options(hint_params)
    low, high = params.pop("n_range")
    queries = []
    for product in products:
        rng = np.random.default_rng([seed, DOODLE_SEARCH_STREAM if doodles else SEARCH_STREAM, id_key(product.id)])
        photo, mask, edges = product.photo, product.mask, product.edges
        if doodles:
            doodle = synthesise_doodle(photo, mask, edges, rng, EVAL_STYLE)
            photo, mask, edges = doodle.photo, doodle.mask, doodle.edges
        hints = simulate_hints(photo, mask, rng, n_range=(max(1, int(low)), int(high)), **params)
        queries.append(ShopperQuery(product.id, categories[product.id], edges, hints))
    return queries


Classify = Callable[[np.ndarray], str]
"""A drawing (RGB) -> its category: the sketch classifier behind the API's category=auto."""


def auto_category(catalog: Catalog, queries: Sequence[ShopperQuery], classify: Classify,
                  photos: Sequence[np.ndarray | None] | None = None, top_k: int = 10) -> dict[str, float]:
    """What `category=auto` gives a shopper: how often the classifier names the drawing's
    category, and the share of the top-k products that are of the right category when the
    search is filtered by the classifier's answer (as the API does)."""
    right, in_category = 0, []
    for i, query in enumerate(queries):
        guess = classify(query.sketch)
        right += guess == query.category
        hits = catalog.search(photo=None if photos is None else photos[i], sketch=query.sketch,
                              category=guess, top_k=top_k)
        in_category += [h.category == query.category for h in hits]
    return {"accuracy": right / max(1, len(queries)),
            f"top{top_k}_in_category": float(np.mean(in_category)) if in_category else 0.0,
            "n": len(queries)}


def kind_weights(kind: str, configured: Mapping[str, float]) -> dict[str, float]:
    """Weights that switch on exactly the kind's signals (text is off: queries have no words)."""
    signals = QUERY_KINDS[kind]
    base = {name: 0.0 for name in configured}
    if signals is None:
        return {**base, **{s: configured.get(s, 0.0) for s in IMAGE_SIGNALS}}
    return {**base, **{s: 1.0 for s in signals}}


def rank_of(product_id: str, ranked_ids: Sequence[str]) -> int | None:
    """1-based rank of the product, or None when it was not returned at all."""
    try:
        return list(ranked_ids).index(product_id) + 1
    except ValueError:
        return None


def rank_metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    """acc@1, acc@10 and mean reciprocal rank (a product never returned counts 0)."""
    if not ranks:
        return {"acc@1": 0.0, "acc@10": 0.0, "mrr": 0.0, "n": 0}
    arr = np.array([r if r is not None else np.inf for r in ranks], np.float64)
    return {"acc@1": float(np.mean(arr <= 1)), "acc@10": float(np.mean(arr <= 10)),
            "mrr": float(np.mean(1.0 / arr)), "n": len(ranks)}


def percentile_ms(seconds: Sequence[float]) -> dict[str, float]:
    values = np.asarray(seconds, np.float64) * 1000.0
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)), "n": len(values)}


def evaluate_search(catalog: Catalog, queries: Sequence[ShopperQuery], generate: Generate | None, *,
                    kinds: Sequence[str] = tuple(QUERY_KINDS), hnsw: HnswParams | None = None,
                    progress: Callable[[int], None] | None = None, classify: Classify | None = None) -> dict:
    """The metrics table, recall@10 of HNSW against exact search, and query latency; with
    `classify`, also what category=auto gives (`auto_category`).

    `generate=None` skips the kinds that need a generated photo (no champion yet).
    """
    kinds = [k for k in kinds if generate is not None or "photo" not in (QUERY_KINDS[k] or ("photo",))]
    ranks: dict[str, list[int | None]] = {k: [] for k in kinds}
    fused_vectors: list[tuple[str, np.ndarray]] = []
    configured = catalog.settings.weights
    # Generate first, then time the searches on their own: OpenMP threads still spinning after a
    # generator call would otherwise be billed to search (in the service they are other processes).
    photos = [generate(q.category, q.edges, q.hints) if generate is not None else None for q in queries]
    latencies = time_searches(catalog, queries, photos)
    for i, (query, photo) in enumerate(zip(queries, photos)):
        parts = catalog.encode(photo=photo, sketch=query.sketch)
        everything = len(catalog)
        for kind in kinds:
            weights = kind_weights(kind, configured)
            hits = catalog.search_parts(parts, category=query.category, top_k=everything, weights=weights)
            ranks[kind].append(rank_of(query.product_id, [h.id for h in hits]))
        vector = query_vector(catalog.layout, parts, kind_weights("fused", configured))
        if vector is not None:
            fused_vectors.append((query.category, vector))
        if progress is not None:
            progress(i + 1)
    report: dict = {kind: rank_metrics(r) for kind, r in ranks.items()}
    report["index"] = index_recall(catalog, fused_vectors, hnsw or catalog.settings.index.hnsw)
    report["latency_ms"] = percentile_ms(latencies)
    report["n_queries"] = len(queries)
    if classify is not None:
        report["auto_category"] = auto_category(catalog, queries, classify, photos)
    return report


def time_searches(catalog: Catalog, queries: Sequence[ShopperQuery], photos: Sequence[np.ndarray | None]) -> list[float]:
    """Seconds per end-to-end fused search (encoding the images included), after one warm-up query."""
    if queries:
        catalog.search(photo=photos[0], sketch=queries[0].sketch, category=queries[0].category, top_k=10)
    seconds = []
    for query, photo in zip(queries, photos):
        started = time.perf_counter()
        catalog.search(photo=photo, sketch=query.sketch, category=query.category, top_k=10)
        seconds.append(time.perf_counter() - started)
    return seconds


def index_recall(catalog: Catalog, queries: Sequence[tuple[str, np.ndarray]], hnsw: HnswParams, k: int = 10) -> dict:
    """recall@k of an all-HNSW copy of the served vectors against exact search, and its latency.

    The demo catalog is small enough to be served exactly; forcing HNSW here measures what a
    big catalog would get with the same vectors and graph settings.
    """
    served = catalog.vector_index
    graph = VectorIndex.build(np.asarray(served.vectors), _metadata(served), IndexConfig(exact_threshold=0, hnsw=hnsw))
    found, truth, seconds = [], [], []
    for category, vector in queries:
        started = time.perf_counter()
        approx = graph.search(vector, k, category=category)
        seconds.append(time.perf_counter() - started)
        found.append([h.id for h in approx])
        truth.append([h.id for h in served.search(vector, k, category=category, exact=True)])
    return {"recall@10": recall_at_k(found, truth, k), "hnsw_latency_ms": percentile_ms(seconds) if seconds else {},
            "served_kind": sorted({p.kind for p in served.partitions.values()}), "rows": len(served)}


def _metadata(index: VectorIndex) -> list[dict]:
    table = index.table
    return [{"id": str(table.ids[i]), "category": table.categories[table.category_codes[i]],
             "brand": table.brands[table.brand_codes[i]], "price": float(table.prices[i])} for i in range(len(table))]
