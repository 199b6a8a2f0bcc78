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

Where the inside is: the drawing's ink closed with a wide disc and its holes filled, computed
here independently of the service's own outline closing, so the figure does not grade the
service with its own ruler.

  make serve   # or s2f demo, in another terminal
  python bench/real_doodles.py --url http://127.0.0.1:3000 --out bench/real_doodles.json
"""
from __future__ import annotations

import argparse
import base64
import csv
import json
import sys
from pathlib import Path

import cv2
import httpx
import numpy as np

PALETTE = [(200, 30, 40), (30, 90, 200), (30, 140, 60), (240, 190, 30), (130, 50, 160), (240, 120, 30),
           (20, 130, 130), (230, 90, 150)]
"""Dot colours (RGB), saturated enough that the page and the service read them as hints."""
CLOSING = 12
"""Radius (px at 256) of the closing that finds a doodle's inside."""


def inside_of(drawing: np.ndarray) -> np.ndarray:
    """Boolean mask of what the drawing encloses once its openings up to ~2 x CLOSING are shut."""
    ink = (drawing.min(axis=2) < 160).astype(np.uint8)
    radius = max(1, int(round(CLOSING * drawing.shape[0] / 256)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    closed = cv2.morphologyEx(np.pad(ink, radius + 1), cv2.MORPH_CLOSE, disc)[radius + 1:-radius - 1, radius + 1:-radius - 1]
    flood = closed.copy()
    mask = np.zeros((flood.shape[0] + 2, flood.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, mask, (0, 0), 1)
    return (flood == 0) | (closed > 0) & (ink == 0)


def with_dots(drawing: np.ndarray, rng: np.random.Generator, colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The drawing with three dots of `colour` inside it, and the body mask they colour."""
    inside = inside_of(drawing)
    ink = drawing.min(axis=2) < 160
    room = cv2.distanceTransform((inside & ~ink).astype(np.uint8), cv2.DIST_L2, 3)
    radius = max(3, drawing.shape[0] // 64)
    spots = np.argwhere(room > 2 * radius)
    out = drawing.copy()
    if len(spots) == 0:
        return out, inside
    for y, x in spots[rng.choice(len(spots), size=min(3, len(spots)), replace=False)]:
        cv2.circle(out, (int(x), int(y)), radius, colour, -1)
    body = cv2.erode(inside.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return out, body


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
    rows = list(csv.DictReader((doodles / "manifest.csv").open()))
    rng = np.random.default_rng(seed)
    per: dict[str, dict[str, list]] = {}
    with httpx.Client(timeout=120) as client:
        for i, row in enumerate(rows):
            drawing = cv2.cvtColor(cv2.imread(str(doodles / row["file"])), cv2.COLOR_BGR2RGB)
            colour = PALETTE[i % len(PALETTE)]
            dotted, body = with_dots(drawing, rng, colour)
            png = cv2.imencode(".png", cv2.cvtColor(dotted, cv2.COLOR_RGB2BGR))[1].tobytes()
            truth = row["class"]
            auto = ask(client, url, png, "auto")
            named = ask(client, url, png, truth)
            photo = cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(named["image"]), np.uint8),
                                              cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            stats = per.setdefault(truth, {"auto_right": [], "in_category": [], "body_delta_e": []})
            stats["auto_right"].append(auto["category"] == truth)
            stats["in_category"] += [p["category"] == truth for p in auto["products"]]
            error = body_delta_e(photo, body, colour)
            if error is not None:
                stats["body_delta_e"].append(error)
    def summary(s: dict[str, list]) -> dict:
        return {"n": len(s["auto_right"]), "auto_accuracy": round(float(np.mean(s["auto_right"])), 3),
                "top10_in_category": round(float(np.mean(s["in_category"])), 3) if s["in_category"] else None,
                "body_delta_e": round(float(np.median(s["body_delta_e"])), 2) if s["body_delta_e"] else None}
    everything = {k: sum((s[k] for s in per.values()), []) for k in ("auto_right", "in_category", "body_delta_e")}
    return {"url": url, "doodles": str(doodles), "per_category": {c: summary(s) for c, s in per.items()},
            "overall": summary(everything)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--doodles", type=Path, default=Path("../shared/data/doodles-dev"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here (JSON)")
    args = parser.parse_args(argv)
    if not (args.doodles / "manifest.csv").is_file():
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
