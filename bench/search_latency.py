"""Catalog search latency: build time, p50/p99 single-query latency and recall@10 vs exact, per catalog size.

Why: the shop page calls the index once per shopper sketch; we need p99 < 5 ms at 100k products with
recall@10 >= 0.95. The benchmark sweeps efSearch and reports the cheapest setting that reaches the recall
target, on synthetic clustered embeddings (mixture of Gaussians on the unit sphere, 4 categories), which
are harder for HNSW than uniform noise and closer to real image embeddings.

Memory / time for 1M x 256-d: vectors 1 GB float32, plus ~1.3 GB for the HNSW graphs (they keep their own
copy of the vectors, plus M*2 neighbour ids per node); build is several minutes on 2 cores. Run it with
``--sizes 10000 100000 1000000`` when you have ~4 GB RAM free and time to spare.

    python -m bench.search_latency                         # 10k and 100k, writes reports/search_latency.json
    python -m bench.search_latency --sizes 1000000 --ef 64 128
    OMP_NUM_THREADS=1 python -m bench.search_latency --dim 384 --threads 2   # as bench/run_all.py runs it

Queries run with ``--query-threads`` FAISS/OpenMP threads (default 1): the app searches one query at a
time, and on a small shared machine idle OpenMP threads spinning between queries cost more than they
give (start the process with OMP_NUM_THREADS=1 so numpy's BLAS stays on one thread too); ``--threads``
sets the threads for building only.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from sketch2fashion.catalog.index import HnswParams, IndexConfig, ProductTable, VectorIndex, recall_at_k  # noqa: E402

CATEGORIES = ("top", "pants", "skirt", "hat")


def mixture_of_gaussians(n: int, centres: np.ndarray, spread: float, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
    """Unit vectors drawn around random centres, generated in float32 chunks so 1M x 256 fits in ~1 GB."""
    d = centres.shape[1]
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        x = centres[rng.integers(0, len(centres), stop - start)]
        x = x + spread * rng.standard_normal((stop - start, d), dtype=np.float32)
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def synthetic_catalog(n: int, d: int, clusters: int, spread: float, seed: int) -> tuple[np.ndarray, ProductTable, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d), dtype=np.float32) / np.sqrt(d)
    vectors = mixture_of_gaussians(n, centres, spread / np.sqrt(d), rng)
    table = ProductTable.from_columns(
        ids=[f"p{i}" for i in range(n)],
        categories=np.asarray(CATEGORIES)[rng.integers(0, len(CATEGORIES), n)],
        brands=np.asarray(["acme", "bolt", "corto", "dune"])[rng.integers(0, 4, n)],
        prices=rng.uniform(5, 200, n),
    )
    return vectors, table, centres


def time_queries(index: VectorIndex, queries: np.ndarray, categories: list[str], k: int, **kw) -> tuple[np.ndarray, list[list[str]]]:
    """Per-query wall times (ms) and the returned ids, one query at a time as the app calls it."""
    times, ids = np.empty(len(queries)), []
    for i, (q, cat) in enumerate(zip(queries, categories)):
        t0 = time.perf_counter()
        hits = index.search(q, k, category=cat, **kw)
        times[i] = (time.perf_counter() - t0) * 1e3
        ids.append([h.id for h in hits])
    return times, ids


def bench_size(n: int, args: argparse.Namespace) -> dict:
    vectors, table, centres = synthetic_catalog(n, args.dim, args.clusters, args.spread, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    queries = mixture_of_gaussians(args.queries, centres, args.spread / np.sqrt(args.dim), rng)  # held out
    categories = [CATEGORIES[i] for i in rng.integers(0, len(CATEGORIES), args.queries)]
    config = IndexConfig(exact_threshold=args.exact_threshold,
                         hnsw=HnswParams(M=args.M, ef_construction=args.ef_construction, ef_search=args.ef[0]))
    t0 = time.perf_counter()
    index = VectorIndex.build(vectors, table, config)
    build_s = time.perf_counter() - t0
    if args.query_threads:
        import faiss

        faiss.omp_set_num_threads(args.query_threads)
    kinds = sorted({p.kind for p in index.partitions.values()})
    time_queries(index, queries[:200], categories[:200], args.k)  # warm-up: page faults, BLAS thread pools
    time_queries(index, queries[:200], categories[:200], args.k, exact=True)
    exact_ms, truth = time_queries(index, queries, categories, args.k, exact=True)
    sweep = []
    for ef in (args.ef if "hnsw" in kinds else [0]):
        ms, found = time_queries(index, queries, categories, args.k, ef_search=ef or None)
        sweep.append({"ef_search": ef or None, "p50_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
                      "recall_at_k": recall_at_k(found, truth, args.k)})
    chosen = next((s for s in sweep if s["recall_at_k"] >= args.target_recall), sweep[-1])
    return {"n": n, "dim": args.dim, "kinds": kinds, "build_s": build_s,
            "exact_p50_ms": float(np.median(exact_ms)), "exact_p99_ms": float(np.percentile(exact_ms, 99)),
            "chosen": chosen, "sweep": sweep}


def print_table(results: list[dict], k: int) -> None:
    head = f"{'n':>9} {'kind':>6} {'build_s':>8} {'efSearch':>8} {'p50_ms':>7} {'p99_ms':>7} {f'recall@{k}':>9} {'exact_p50':>9} {'exact_p99':>9}"
    print(head)
    print("-" * len(head))
    for r in results:
        c = r["chosen"]
        print(f"{r['n']:>9} {'/'.join(r['kinds']):>6} {r['build_s']:>8.2f} {str(c['ef_search']):>8} {c['p50_ms']:>7.3f} "
              f"{c['p99_ms']:>7.3f} {c['recall_at_k']:>9.3f} {r['exact_p50_ms']:>9.3f} {r['exact_p99_ms']:>9.3f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="catalog sizes (add 1000000 for the 1M run)")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--clusters", type=int, default=512, help="Gaussian mixture components")
    p.add_argument("--spread", type=float, default=1.0, help="within-cluster noise relative to centre norm")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--M", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", type=int, nargs="+", default=[16, 32, 64, 128, 256], help="efSearch values to sweep, ascending")
    p.add_argument("--exact-threshold", type=int, default=20_000, help="sub-indexes below this size are searched exactly")
    p.add_argument("--target-recall", type=float, default=0.95)
    p.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads for building (0 = library default)")
    p.add_argument("--query-threads", type=int, default=1, help="FAISS OpenMP threads for queries (0 = leave as built)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("reports/search_latency.json"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = []
    for n in args.sizes:
        if args.threads:
            import faiss

            faiss.omp_set_num_threads(args.threads)
        results.append(bench_size(n, args))
        print(f"done n={n}: build {results[-1]['build_s']:.1f} s", file=sys.stderr, flush=True)
    print_table(results, args.k)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
