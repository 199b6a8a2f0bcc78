"""The models of an earlier commit, scored on today's doodle evaluation: the "before" columns.

The earlier pipeline is run in its own git worktree (its code, its params, its own MLflow store),
e.g. for the commit before the hand-drawing work:

  git worktree add ../before f4e2e4b
  (cd ../before && PYTHONPATH=$PWD dvc repro train@top evaluate@top train_classifier train_embedder)
  python bench/experiments/before_doodles.py --before ../before --category top

Its models are then fed exactly what its own serving fed them (a 5-channel sketch: edges without
outline closing, hints; classifier and encoder inputs padded square, no framing) on today's val
split and doodle evaluation items (colorizer/doodle.py EVAL_STYLE), and scored with today's
metrics: SSIM, body Delta E against the hints' flat fill, classifier accuracy on doodles, doodle
sketch -> photo retrieval acc@10. The same numbers for today's models come from the pipeline's
own reports (reports/eval/*.json, reports/classifier.json, reports/embedder.json).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import mlflow
import numpy as np
import torch

from sketch2fashion.catalog.embedder import load_encoder
from sketch2fashion.catalog.embedder_training import eval_doodle, eval_sketch, load_products, retrieval_metrics
from sketch2fashion.classifier.model import load_classifier
from sketch2fashion.classifier.training import load_labelled
from sketch2fashion.colorizer.dataset import ColorizerDataset, garment_body, hint_options
from sketch2fashion.imaging.flat_fill import prepare_fill
from sketch2fashion.metrics import ssim
from sketch2fashion.metrics.hint_fidelity import body_delta_e
from sketch2fashion.models.inputs import to_generator_batch, to_images
from sketch2fashion.registry.tracking import git_commit


def padded(rgb: np.ndarray, size: int) -> torch.Tensor:
    """The earlier encoders' input: padded square on white, area-averaged to size, [-1, 1]."""
    side = max(rgb.shape[:2])
    canvas = np.full((side, side, 3), 255, np.uint8)
    top, left = (side - rgb.shape[0]) // 2, (side - rgb.shape[1]) // 2
    canvas[top:top + rgb.shape[0], left:left + rgb.shape[1]] = rgb
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    return torch.from_numpy(small).permute(2, 0, 1).float() / 127.5 - 1.0


def colorizer_scores(model, data: ColorizerDataset) -> dict:
    """SSIM and body Delta E of a 5-channel colorizer fed raw sketches, as its serving did."""
    ssims, errors = [], []
    for i in range(len(data)):
        photo, mask, edges, hints = data.arrays(i)
        fill = prepare_fill(edges, hints).fill  # the reference colours only; the model never sees it
        batch = to_generator_batch(edges[None], hints.rgb[None], hints.mask[None], fill.rgb[None],
                                   fill.weight[None]).numpy()[:, :5]
        fake = to_images(torch.from_numpy(np.asarray(model.predict(batch))))
        ssims.append(float(ssim(fake, photo[None]).mean))
        errors += body_delta_e(fake, fill.rgb[None], (fill.weight > 100)[None], garment_body(mask)[None])
    return {"ssim": round(float(np.mean(ssims)), 4),
            "body_delta_e": round(float(np.median(errors)), 2) if errors else None, "n": len(data)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the earlier commit's worktree, pipeline run")
    parser.add_argument("--category", default="top")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    report: dict = {"before_commit": git_commit(args.before)}  # the commit, not this machine's path

    mlflow.set_tracking_uri(f"sqlite:///{(args.before / 'mlflow' / 'mlflow.db').resolve()}")
    evaluated = json.loads((args.before / "reports" / "eval" / f"{args.category}.json").read_text())
    model = mlflow.pyfunc.load_model(evaluated["model_uri"], model_config={"dtype": "fp32"})
    report["colorizer"] = {"category": args.category,
                           "val": colorizer_scores(model, ColorizerDataset(args.data_dir, args.category, "val",
                                                                            size=args.size, train=False)),
                           "doodles": colorizer_scores(model, ColorizerDataset(args.data_dir, args.category, "val",
                                                                                size=args.size, train=False,
                                                                                doodles=True))}

    classifier = load_classifier(args.before / "models" / "classifier.pt")
    data = load_labelled(args.data_dir, "val", 128, classifier.categories)
    hints = hint_options({})
    for name, draw in (("sketches", eval_sketch), ("doodles", eval_doodle)):
        batch = torch.stack([padded(draw(p, 0, hints), classifier.image_size) for p in data.products])
        with torch.no_grad():
            predicted = classifier(batch).argmax(1).numpy()
        per = {c: round(float(np.mean(predicted[data.labels == k] == k)), 3)
               for k, c in enumerate(classifier.categories) if (data.labels == k).any()}
        report.setdefault("classifier", {})[name] = {"accuracy": round(float(np.mean(predicted == data.labels)), 3),
                                                    "per_category": per}

    encoder = load_encoder(args.before / "models" / "embedder.pt")
    products = load_products(args.data_dir, "val", encoder.image_size)
    with torch.no_grad():
        gallery = encoder(torch.stack([padded(p.photo, encoder.image_size) for p in products])).numpy()
        for name, draw in (("sketches", eval_sketch), ("doodles", eval_doodle)):
            queries = encoder(torch.stack([padded(draw(p, 0, hints), encoder.image_size) for p in products])).numpy()
            report.setdefault("encoder", {})[name] = {k: round(v, 3) for k, v in retrieval_metrics(queries, gallery).items()}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
