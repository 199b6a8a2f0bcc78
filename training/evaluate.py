"""DVC stage `evaluate@<category>`: score the model exactly as it will be served, and log it.

Exports the best generator of `train@<category>` (torch.export) inside an MLflow pyfunc model
(logged into the training run), loads that model back the way serving does, and scores it on the
whole val split with the same fixed-seed hints as training. The SSIM reported here — of the
served artifact, in its serving precision — is what the promotion gate compares.

It scores the same model on a doodle of every val product too (colorizer/doodle.py, the
evaluation style, its own seed stream): quick outlines as shoppers draw them, where the colour
error over the garment body (`body_delta_e`) says whether the photo takes the shopper's colours.

Writes reports/eval/<category>.json (DVC metrics; the promote stage's candidate) and the sample
grids reports/eval/<category>.png and reports/eval/<category>-doodle.png (sketch+hints |
generated | real).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mlflow
import torch

from sketch2fashion.colorizer import ColorizerDataset, evaluate_generator
from sketch2fashion.colorizer.evaluate import sample_grid, save_sample_grid
from sketch2fashion.models.networks import build_generator
from sketch2fashion.params import ParamsError, load_params
from sketch2fashion.registry.colorizer_model import EXPORT_FORMAT, PyfuncGenerator, log_colorizer
from sketch2fashion.registry.tracking import configure

ARTIFACT_PATH = "colorizer"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data", type=Path)
    parser.add_argument("--models-dir", default="models", type=Path)
    parser.add_argument("--reports-dir", default="reports", type=Path)
    return parser.parse_args(argv)


def evaluate_category(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    category = args.category
    size = int(params["image"]["size"])
    model_cfg = dict(params.get("model") or {})
    train_report_path = args.reports_dir / "train" / f"{category}.json"
    weights_path = args.models_dir / category / "best_generator.pt"
    for path in (train_report_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run the training stage first (dvc repro train@{category})")
    train_report = json.loads(train_report_path.read_text())
    state = torch.load(weights_path, map_location="cpu", weights_only=False)
    generator = build_generator(model_cfg, size)
    generator.load_state_dict(state["generator"])
    generator.eval()
    seed = int((params.get("train") or {}).get("seed", 0))
    val_set = ColorizerDataset(args.data_dir, category, "val", size=size, train=False,
                               hint_params=params.get("hints") or {}, seed=seed)
    doodle_set = ColorizerDataset(args.data_dir, category, "val", size=size, train=False,
                                  hint_params=params.get("hints") or {}, seed=seed, doodles=True)

    configure(Path.cwd())
    with mlflow.start_run(run_id=train_report["run_id"]):
        info = log_colorizer(generator, category=category, image_size=size, artifact_path=ARTIFACT_PATH,
                             model_config=model_cfg, step=int(state["epoch"]))
        served = PyfuncGenerator(mlflow.pyfunc.load_model(info.model_uri))
        scores = evaluate_generator(served, val_set, device="cpu", autocast=False)
        doodles = evaluate_generator(served, doodle_set, device="cpu", autocast=False)
        grid_path = args.reports_dir / "eval" / f"{category}.png"
        doodle_grid_path = args.reports_dir / "eval" / f"{category}-doodle.png"
        save_sample_grid(grid_path, sample_grid(served, val_set, n=6, device="cpu", autocast=False))
        save_sample_grid(doodle_grid_path, sample_grid(served, doodle_set, n=6, device="cpu", autocast=False))
        mlflow.log_metrics({f"served_{k}": float(v) for k, v in scores.items() if k != "n"})
        mlflow.log_metrics({f"served_doodle_{k}": float(v) for k, v in doodles.items() if k != "n"})
        mlflow.log_artifact(str(grid_path), artifact_path="eval")
        mlflow.log_artifact(str(doodle_grid_path), artifact_path="eval")
    return {
        "category": category, "run_id": train_report["run_id"], "epoch": int(state["epoch"]),
        "ssim": round(scores["ssim"], 6), "psnr": round(scores["psnr"], 4), "l1": round(scores["l1"], 6),
        "n": int(scores["n"]), "train_ssim": train_report["ssim"],
        **_colour_errors(scores),
        "doodle": {"ssim": round(doodles["ssim"], 6), "psnr": round(doodles["psnr"], 4), **_colour_errors(doodles),
                   "n": int(doodles["n"])},
        "artifact_path": ARTIFACT_PATH, "model_uri": info.model_uri, "format": EXPORT_FORMAT,
    }


def _colour_errors(scores: dict) -> dict:
    """The colour errors of an evaluation (absent when no sketch had hints), rounded."""
    keys = ("hint_delta_e", "body_delta_e", "real_body_delta_e")
    return {k: round(float(scores[k]), 3) for k in keys if k in scores}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = evaluate_category(args)
    except (ParamsError, FileNotFoundError) as exc:
        print(f"evaluate@{args.category}: {exc}", file=sys.stderr)
        return 2
    out = args.reports_dir / "eval" / f"{args.category}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
