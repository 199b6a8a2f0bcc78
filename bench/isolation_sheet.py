"""Contact sheets for checking garment isolation by eye: a random sample and the hard cases.

Ingest cuts each garment out of its photo (`imaging/isolate.py`) and only refuses masks that cover
less than 5% or more than 95% of the frame; a mask that follows a print instead of the garment, or
swallows a pale floor, passes that rule. This draws, for each photo, the source with the mask's
outline in red beside the isolated garment, numbered, so a person can mark each one right or wrong:

- `random.png`: a seeded random sample of the ingested photos;
- `pale.png`: pale garments whose colour is closest to their photo's border (pale on pale);
- `dark.png`: the darkest garments, closest to their border;
- `patterned.png`: the most textured garments (mean absolute Laplacian inside the mask).

Each sheet has a CSV beside it (number, id, category, mask fraction) to write the verdicts into.
The sheets are built from the photo set itself: keep them outside the repository.

  python -m bench.isolation_sheet --project real --out /tmp/isolation-sheets
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import cv2
import numpy as np

from sketch2fashion.imaging.io import square_pad

TILE = 160
PER_SHEET = 16


def tile(number: int, row: dict, photos: Path, data: Path) -> np.ndarray:
    """Source with the mask's outline (red) | the isolated garment, labelled with its number."""
    source = cv2.resize(square_pad(cv2.imread(str(photos / row["source"]))), (TILE, TILE), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(cv2.imread(str(data / row["mask"]), cv2.IMREAD_GRAYSCALE), (TILE, TILE),
                      interpolation=cv2.INTER_NEAREST)
    outline, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(source, outline, -1, (0, 0, 255), 2)
    isolated = cv2.resize(cv2.imread(str(data / row["image"])), (TILE, TILE), interpolation=cv2.INTER_AREA)
    pair = np.concatenate([source, isolated], 1)
    cv2.putText(pair, f"{number} {row['mask_fraction']}", (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 0, 255), 1)
    return pair


def describe(row: dict, photos: Path, data: Path) -> dict | None:
    """Garment lightness, its distance to the photo border's colour (Lab) and its texture."""
    isolated, source = cv2.imread(str(data / row["image"])), cv2.imread(str(photos / row["source"]))
    mask = cv2.imread(str(data / row["mask"]), cv2.IMREAD_GRAYSCALE) > 127
    if isolated is None or source is None or not mask.any():
        return None
    garment = cv2.cvtColor(isolated, cv2.COLOR_BGR2LAB)[mask].astype(np.float64)
    band = max(4, min(source.shape[:2]) // 20)
    border = np.concatenate([source[:band].reshape(-1, 3), source[-band:].reshape(-1, 3),
                             source[:, :band].reshape(-1, 3), source[:, -band:].reshape(-1, 3)])
    border_lab = cv2.cvtColor(border[None], cv2.COLOR_BGR2LAB)[0].astype(np.float64)
    grey = cv2.cvtColor(isolated, cv2.COLOR_BGR2GRAY).astype(np.float64)
    return {"lightness": garment[:, 0].mean() * 100 / 255, "border_lightness": border_lab[:, 0].mean() * 100 / 255,
            "contrast": float(np.linalg.norm(garment.mean(0) - border_lab.mean(0))),
            "texture": float(np.abs(cv2.Laplacian(grey, cv2.CV_64F))[mask].mean())}


def hard_cases(rows: list[dict], photos: Path, data: Path) -> dict[str, list[dict]]:
    described = [(row, d) for row in rows if (d := describe(row, photos, data)) is not None]
    pale = [(r, d) for r, d in described if d["lightness"] > 68 and d["border_lightness"] > 58]
    dark = [(r, d) for r, d in described if d["lightness"] < 28]
    return {"pale": [r for r, _ in sorted(pale, key=lambda x: x[1]["contrast"])[:PER_SHEET]],
            "dark": [r for r, _ in sorted(dark, key=lambda x: x[1]["contrast"])[:PER_SHEET]],
            "patterned": [r for r, _ in sorted(described, key=lambda x: -x[1]["texture"])[:PER_SHEET]]}


def write_sheet(out: Path, name: str, rows: list[dict], photos: Path, data: Path) -> None:
    tiles = [tile(i, row, photos, data) for i, row in enumerate(rows)]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % 4)
    cv2.imwrite(str(out / f"{name}.png"), np.concatenate([np.concatenate(tiles[k:k + 4], 1)
                                                          for k in range(0, len(tiles), 4)], 0))
    with (out / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "id", "category", "mask_fraction", "verdict"])
        writer.writerows([i, row["id"], row["category"], row["mask_fraction"], ""] for i, row in enumerate(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path("real"), help="an ingested project (default: %(default)s)")
    parser.add_argument("--photos", type=Path, default=None, help="its photo folder (default: the project's source.path)")
    parser.add_argument("--out", type=Path, required=True, help="where the sheets go (outside the repository)")
    parser.add_argument("--random", type=int, default=48, help="photos on the random sheet (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from sketch2fashion.params import load_params, require

    data = args.project / "data"
    photos = args.photos or Path(require(load_params(args.project / "params.yaml"), "source.path"))
    rows = [r for r in csv.DictReader((data / "manifest.csv").open()) if r["isolation"] == "ok"]
    args.out.mkdir(parents=True, exist_ok=True)
    sheets = {"random": random.Random(args.seed).sample(rows, min(args.random, len(rows))),
              **hard_cases(rows, photos, data)}
    for name, chosen in sheets.items():
        write_sheet(args.out, name, chosen, photos, data)
        print(f"{args.out / name}.png: {len(chosen)} photos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
