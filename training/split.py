"""DVC stage `split`: merge the per-category manifests and assign train/val by a stable hash.

    python training/split.py [--data-dir data] [--report reports/split.json]

Writes data/manifest.csv (every category, `split` filled) and a count report for `dvc metrics`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from sketch2fashion.data.manifest import (
    ISOLATION_FAILED, ManifestError, read_manifest, write_manifest,
)
from sketch2fashion.data.split import assign_splits, split_counts
from sketch2fashion.imaging.io import write_bytes_atomic
from sketch2fashion.params import ParamsError, categories, load_params


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Merge data/raw/<category>/manifest.csv for every category in params and "
                    "assign train/val splits by a salted hash of each id.")
    parser.add_argument("--params", default="params.yaml", help="Params file (default: %(default)s).")
    parser.add_argument("--data-dir", default="data", help="Data folder (default: %(default)s).")
    parser.add_argument("--out", default=None,
                        help="Combined manifest (default: <data-dir>/manifest.csv).")
    parser.add_argument("--report", default="reports/split.json",
                        help="Report JSON (default: %(default)s).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = Path(args.data_dir)
    try:
        params = load_params(args.params)
        split = params.get("split") or {}
        try:
            val_fraction = float(split.get("val_fraction", 0.15))
        except (TypeError, ValueError):
            val_fraction = -1.0
        salt = str(split.get("salt", ""))
        if not 0.0 <= val_fraction <= 1.0:
            raise ParamsError(f"{args.params}: split.val_fraction is {split.get('val_fraction')!r}; "
                              "use a value in 0..1")
        rows = []
        for category in categories(params):
            rows.extend(read_manifest(data_dir / "raw" / category / "manifest.csv"))
    except (ParamsError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = assign_splits(rows, val_fraction, salt)
    out = Path(args.out) if args.out else data_dir / "manifest.csv"
    write_manifest(out, rows)
    report = _report(rows, val_fraction, salt)
    write_bytes_atomic(args.report, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    total = report["total"]
    print(f"split: {total['train']} train, {total['val']} val "
          f"({total['val_fraction']:.1%} val) -> {out}")
    return 0


def _report(rows: list[dict], val_fraction: float, salt: str) -> dict:
    per_category = split_counts(rows)
    for category, counts in per_category.items():
        counts["isolation_failed"] = sum(1 for row in rows if row["category"] == category
                                         and row["isolation"] == ISOLATION_FAILED)
    train = sum(counts["train"] for counts in per_category.values())
    val = sum(counts["val"] for counts in per_category.values())
    return {
        "val_fraction_target": val_fraction,
        "salt": salt,
        "total": {"train": train, "val": val, "images": train + val,
                  "val_fraction": round(val / (train + val), 4) if rows else 0.0},
        "categories": per_category,
    }


if __name__ == "__main__":
    sys.exit(main())
