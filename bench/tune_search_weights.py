"""Grid-search the fused query's signal weights on TRAIN-split shopper queries (never on val).

Prints the best weight sets by MRR with their acc@10; copy the chosen set into params.yaml
`search.weights`, then `dvc repro evaluate_search` reports the val table with it. Needs the
published index and champion colorizers (`dvc repro index promote`).

    python -m bench.tune_search_weights --every 3
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from evaluate_search import ChampionColorizers  # noqa: E402

from sketch2fashion.catalog.embedder_training import load_products  # noqa: E402
from sketch2fashion.catalog.evaluation import rank_metrics, rank_of, shopper_queries  # noqa: E402
from sketch2fashion.catalog.search import Catalog  # noqa: E402
from sketch2fashion.data.manifest import read_manifest  # noqa: E402
from sketch2fashion.params import load_params  # noqa: E402
from sketch2fashion.registry.tracking import configure  # noqa: E402

GRID = {"sketch": [1.0], "photo": [0.0, 0.25, 0.5, 1.0], "hint_colour": [0.5, 1.0, 2.0], "photo_colour": [0.0, 0.25, 0.5]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default=Path("data"), type=Path)
    parser.add_argument("--every", type=int, default=3, help="use every n-th train product (speed)")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    configure(Path.cwd())
    catalog = Catalog.open(params)
    by_id = {r["id"]: r["category"] for r in read_manifest(args.data_dir / "manifest.csv")}
    products = load_products(args.data_dir, "train", int(params["image"]["size"]))[:: args.every]
    queries = shopper_queries(products, by_id, seed=int(params["train"].get("seed", 0)), hint_params=params["hints"])
    generate = ChampionColorizers()
    encoded = [(q, catalog.encode(photo=generate(q.category, q.edges, q.hints), sketch=q.sketch)) for q in queries]
    results = []
    for values in itertools.product(*GRID.values()):
        weights = {**dict(zip(GRID, values)), "text": 0.0, "colour_words": 0.0}
        ranks = [rank_of(q.product_id, [h.id for h in catalog.search_parts(parts, category=q.category,
                                                                             top_k=len(catalog), weights=weights)])
                 for q, parts in encoded]
        results.append((rank_metrics(ranks), dict(zip(GRID, values))))
    print(f"{len(queries)} train queries; best weight sets by MRR:")
    for metrics, weights in sorted(results, key=lambda r: -r[0]["mrr"])[: args.top]:
        print(f"  mrr {metrics['mrr']:.3f}  acc@10 {metrics['acc@10']:.3f}  {weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
