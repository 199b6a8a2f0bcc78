"""Real human doodles through the served API, as a shopper sends them: is the garment right?

Reads the development doodles in ../shared/data/doodles-dev (real Quick, Draw! drawings of
sweaters, jackets and shorts; see that folder's README: credit "Quick, Draw! Dataset, Google
Inc.", CC BY 4.0; never copied into this repository), drops three dots of one colour inside each
drawing, and sends it to a running service's `/colorize_and_search` twice: with
`category=auto` and with the true category. Reports, per true category and overall:

- `auto_accuracy`: how often category=auto named the right garment;
- `top10_in_category`: the share of the top-10 products of the right category (category=auto);
- `body_delta_e`: the median colour error (CIE76) between the dots' colour and the generated
  garment's body (the drawing's inside, eroded), per drawing, then the median over drawings.

The dotted drawings and their bodies come from `sketch2fashion.data.dev_doodles`, the loader the
classifier stage's `real_doodle_accuracy` uses too.

  make serve   # or s2f demo, in another terminal
  python -m bench.real_doodles --url http://127.0.0.1:3000 --out bench/real_doodles.json

With `--test-split-of PROJECT` it sends that project's test-split sketches instead (edge maps
with colour hints, as `evaluate_search` simulates shoppers), e.g. the real photos' after `make real`
and `make serve PROJECT=real`.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import cv2
import httpx
import numpy as np

from sketch2fashion.data.dev_doodles import available, load_dev_doodles


def lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def body_delta_e(photo: np.ndarray, body: np.ndarray, colour: tuple[int, int, int]) -> float | None:
    """Median Delta E between the photo's body pixels and the dots' colour."""
    body = cv2.resize(body.astype(np.uint8), photo.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    if not body.any():
        return None
    target = lab(np.array([[colour]], np.uint8))[0, 0]
    return float(np.median(np.linalg.norm(lab(photo)[body] - target, axis=1)))


def ask(client: httpx.Client, url: str, png: bytes, category: str) -> dict:
    response = client.post(f"{url}/colorize_and_search", files={"sketch": ("doodle.png", png, "image/png")},
                           data={"category": category, "top_k": "10"})
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
    return response.json()


def run(url: str, doodles: Path, seed: int = 0) -> dict:
    per: dict[str, dict[str, list]] = {}
    with httpx.Client(timeout=120) as client:
        for doodle in load_dev_doodles(doodles, seed):
            png = cv2.imencode(".png", cv2.cvtColor(doodle.drawing, cv2.COLOR_RGB2BGR))[1].tobytes()
            truth = doodle.category
            auto = ask(client, url, png, "auto")
            named = ask(client, url, png, truth)
            photo = cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(named["image"]), np.uint8),
                                              cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            stats = per.setdefault(truth, {"auto_right": [], "in_category": [], "body_delta_e": []})
            stats["auto_right"].append(auto["category"] == truth)
            stats["in_category"] += [p["category"] == truth for p in auto["products"]]
            error = body_delta_e(photo, doodle.body, doodle.colour)
            if error is not None:
                stats["body_delta_e"].append(error)
    everything = {k: sum((s[k] for s in per.values()), []) for k in ("auto_right", "in_category", "body_delta_e")}
    return {"url": url, "doodles": str(doodles), "per_category": {c: _summary(s) for c, s in per.items()},
            "overall": _summary(everything)}


def run_test_split(url: str, project: Path) -> dict:
    """The project's test-split shoppers (edge map + colour hints, as evaluate_search simulates them)
    sent with category=auto: the served answer's category and its top-10 products' categories."""
    from sketch2fashion.catalog.embedder_training import load_products
    from sketch2fashion.catalog.evaluation import shopper_queries
    from sketch2fashion.data.manifest import read_manifest
    from sketch2fashion.params import load_params, require

    params = load_params(project / "params.yaml")
    by_id = {r["id"]: r["category"] for r in read_manifest(project / "data" / "manifest.csv")}
    products = load_products(project / "data", "test", int(require(params, "image.size")))
    queries = shopper_queries(products, by_id, seed=int(require(params, "train.seed")), hint_params=require(params, "hints"))
    per: dict[str, dict[str, list]] = {}
    with httpx.Client(timeout=120) as client:
        for query in queries:
            png = cv2.imencode(".png", cv2.cvtColor(query.sketch, cv2.COLOR_RGB2BGR))[1].tobytes()
            auto = ask(client, url, png, "auto")
            stats = per.setdefault(query.category, {"auto_right": [], "in_category": [], "body_delta_e": []})
            stats["auto_right"].append(auto["category"] == query.category)
            stats["in_category"] += [p["category"] == query.category for p in auto["products"]]
    everything = {k: sum((s[k] for s in per.values()), []) for k in ("auto_right", "in_category", "body_delta_e")}
    return {"url": url, "project": str(project), "split": "test",
            "per_category": {c: _summary(s) for c, s in per.items()}, "overall": _summary(everything)}


def _summary(s: dict[str, list]) -> dict:
    return {"n": len(s["auto_right"]), "auto_accuracy": round(float(np.mean(s["auto_right"])), 3),
            "top10_in_category": round(float(np.mean(s["in_category"])), 3) if s["in_category"] else None,
            "body_delta_e": round(float(np.median(s["body_delta_e"])), 2) if s["body_delta_e"] else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--doodles", type=Path, default=Path("../shared/data/doodles-dev"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-split-of", type=Path, default=None, metavar="PROJECT",
                        help="send PROJECT's test-split sketches instead of the doodles (e.g. real, after `make real`)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here (JSON)")
    args = parser.parse_args(argv)
    if args.test_split_of is not None:
        report = run_test_split(args.url, args.test_split_of)
        print(json.dumps(report, indent=2))
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    if not available(args.doodles):
        print(f"{args.doodles}: no manifest.csv; point --doodles at ../shared/data/doodles-dev", file=sys.stderr)
        return 2
    report = run(args.url, args.doodles, args.seed)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
