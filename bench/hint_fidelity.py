"""How well a registered colorizer follows the shopper's colour hints, beside its SSIM.

SSIM mostly rewards silhouette and white background; a model can score well while painting
every garment beige. This measures the colour error (CIE76 delta E in Lab) between the
generated photo and the hint colours at the hinted pixels of every val sketch (fixed-seed hints,
as in evaluation), and the same for the real photo (the floor: hints are sampled from it).

  python bench/hint_fidelity.py --category top            # champion from the MLflow registry
"""
from __future__ import annotations

import argparse
import json

import mlflow
import numpy as np
import torch

from sketch2fashion.colorizer import ColorizerDataset, make_loader
from sketch2fashion.models.inputs import to_images
from sketch2fashion.metrics.hint_fidelity import hint_delta_e
from sketch2fashion.params import load_params
from sketch2fashion.registry.tracking import configure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--model-uri", default=None, help="default: models:/colorizer-<category>@champion")
    args = parser.parse_args()

    params = load_params(args.params)
    configure()
    model = mlflow.pyfunc.load_model(args.model_uri or f"models:/colorizer-{args.category}@champion")
    dataset = ColorizerDataset(args.data_dir, args.category, "val", size=int(params["image"]["size"]),
                               train=False, hint_params=params.get("hints") or {},
                               seed=int((params.get("train") or {}).get("seed", 0)))
    generated, real = [], []
    for batch in make_loader(dataset, 16, shuffle=False):
        inputs = batch["input"]
        hint_rgb = to_images(inputs[:, 1:4])
        hint_mask = (inputs[:, 4] > 0.5).numpy()
        fake = to_images(torch.from_numpy(model.predict(inputs.numpy())))
        generated += hint_delta_e(fake, hint_rgb, hint_mask)
        real += hint_delta_e(to_images(batch["target"]), hint_rgb, hint_mask)
    print(json.dumps({"category": args.category, "hinted_sketches": len(generated),
                      "generated_delta_e": round(float(np.mean(generated)), 2),
                      "real_photo_delta_e": round(float(np.mean(real)), 2)}))


if __name__ == "__main__":
    main()
