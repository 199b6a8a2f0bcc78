"""DVC stage `index`: embed the shop catalog and publish a new search index version atomically.

Reads the products of the catalog store (`s2f catalog ingest`, the `catalog` stage) or, with
`--items manifest`, the ingested photo set itself (a photo collection without a shop feed), embeds
each photo with the trained encoder plus its Lab colour histogram, and publishes a new version
under `catalog.index` (readers such as the running service keep the old one until they refresh).
Writes reports/index.json: version, product counts per category, vector size, build time.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from sketch2fashion.catalog.search import (
    CatalogError, FeatureLayout, SearchSettings, build_catalog_index, items_from_manifest, items_from_store,
)
from sketch2fashion.catalog.embedder import load_encoder
from sketch2fashion.params import ParamsError, load_params


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--items", choices=("store", "manifest"), default="store",
                        help="index the catalog store (default) or the ingested photos in DATA_DIR/manifest.csv")
    parser.add_argument("--data-dir", default=Path("data"), type=Path)
    parser.add_argument("--encoder", default=Path("models/embedder.pt"), type=Path)
    parser.add_argument("--report", default=Path("reports/index.json"), type=Path)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    root = Path.cwd()
    if args.items == "manifest":
        items = items_from_manifest(args.data_dir)
    else:
        store = Path((params.get("catalog") or {}).get("store", "data/catalog/catalog.sqlite"))
        items = items_from_store(store)
    started = time.perf_counter()
    version = build_catalog_index(params, project_root=root, items=items, encoder_path=args.encoder)
    settings = SearchSettings.from_params(params, root)
    layout = FeatureLayout(load_encoder(args.encoder).dim, settings.colour_bins)
    return {"version": version, "products": len(items),
            "per_category": dict(sorted(Counter(i.category for i in items).items())),
            "vector_dim": layout.dim, "build_s": round(time.perf_counter() - started, 2),
            "index_dir": str(settings.index_dir.relative_to(root) if settings.index_dir.is_relative_to(root)
                             else settings.index_dir)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (ParamsError, FileNotFoundError, CatalogError) as exc:
        print(f"index: {exc}", file=sys.stderr)
        return 2
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
