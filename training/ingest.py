"""DVC stage `ingest@<category>`: source photos -> data/raw/<category>/ PNGs, masks, manifest.

    python training/ingest.py --category top [--source data/source] [--jobs 2]

A thin wrapper over `sketch2fashion.data.ingest`; the report JSON feeds `dvc metrics`.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


from sketch2fashion.data.ingest import (
    IngestError, IngestReport, ingest_category, read_feed,
)
from sketch2fashion.data.manifest import ManifestError
from sketch2fashion.imaging.io import write_bytes_atomic
from sketch2fashion.params import ParamsError, categories, load_params

log = logging.getLogger("ingest")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ingest one category's photos: isolate each garment, put it on white, "
                    "square it to image.size and write PNGs, masks and a manifest.")
    parser.add_argument("--category", required=True,
                        help="Category to ingest (one of params `categories`).")
    parser.add_argument("--params", default="params.yaml", help="Params file (default: %(default)s).")
    parser.add_argument("--source", default=None,
                        help="Source photo folder (default: params source.path).")
    parser.add_argument("--feed", default=None,
                        help="Product feed CSV/TSV for titles and colours (default: params "
                             "source.feed, used when present); '' for none.")
    parser.add_argument("--data-dir", default="data", help="Output data folder (default: %(default)s).")
    parser.add_argument("--jobs", type=int, default=None,
                        help="Worker processes (default: params ingest.jobs, else 1).")
    parser.add_argument("--report", default=None,
                        help="Report JSON path (default: reports/ingest/<category>.json).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
        known = categories(params)
        if args.category not in known:
            raise ParamsError(f"{args.params}: category {args.category!r} is not in `categories` "
                              f"({', '.join(known)}); add it there or pick one of those")
        source_params = params.get("source") or {}
        source = Path(args.source if args.source is not None else source_params.get("path", "data/source"))
        feed = _load_feed(args.feed, source_params.get("feed") or "")
        jobs = args.jobs if args.jobs is not None else _jobs_param(params, args.params)
        report = ingest_category(source, args.category, args.data_dir, params=params, feed=feed,
                                 jobs=max(1, jobs))
    except (ParamsError, IngestError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report_path = Path(args.report or f"reports/ingest/{args.category}.json")
    write_bytes_atomic(report_path, (json.dumps(report.to_dict(), indent=2) + "\n").encode("utf-8"))
    print(_summary(report, report_path))
    if report.ingested == 0:
        print(f"error: none of the {report.found} images for {args.category!r} in {source} could be "
              f"read (see the skipped lines above and {report_path})", file=sys.stderr)
        return 1
    return 0


def _jobs_param(params: dict, params_path: str) -> int:
    value = (params.get("ingest") or {}).get("jobs", 1)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ParamsError(f"{params_path}: ingest.jobs is {value!r}; use a whole number") from None


def _load_feed(explicit: str | None, default: str) -> dict | None:
    """An explicit --feed must exist; the params default is optional (real photo sets have none)."""
    if explicit is not None:
        return read_feed(explicit) if explicit else None
    if default and Path(default).is_file():
        return read_feed(default)
    if default:
        log.info("no product feed at %s; titles and colours stay empty", default)
    return None


def _summary(report: IngestReport, report_path: Path) -> str:
    return (f"{report.category}: {report.ingested}/{report.found} ingested, {report.skipped} skipped, "
            f"{report.isolation_failed} isolation failures ({report.isolation_failure_rate:.1%}), "
            f"{report.images_per_second} img/s -> {report_path}")


if __name__ == "__main__":
    sys.exit(main())
