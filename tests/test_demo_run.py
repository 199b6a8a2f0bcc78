"""`s2f demo`'s waves (demo_run.py): the page needs one champion first, then products, then the rest."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from sketch2fashion.demo_run import example_drawing, first_wave, later_waves
from sketch2fashion.imaging.hints import split_sketch
from sketch2fashion.params import categories, load_params

ROOT = Path(__file__).resolve().parents[1]


def stage_names() -> set[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    names = categories(load_params(ROOT / "params.yaml"))
    return {f"{stage}@{name}" if "foreach" in spec else stage for stage, spec in stages.items()
            for name in (names if "foreach" in spec else [None])}


def test_the_waves_name_real_stages_each_category_once_and_end_with_the_whole_pipeline():
    names = categories(load_params(ROOT / "params.yaml"))
    waves = [first_wave(names), *later_waves(names)]
    targets = [t for wave in waves for t in wave]
    assert set(targets) <= stage_names()
    assert waves[0] == [f"promote@{names[0]}"] and waves[1] == ["index"]  # a garment, then its products
    assert sorted(t for t in targets if t.startswith("promote@")) == sorted(f"promote@{n}" for n in names)
    assert waves[-1] == []  # `dvc repro` of everything left


def test_the_example_drawing_is_an_outline_with_colour_dots():
    drawing = cv2.cvtColor(cv2.imdecode(np.frombuffer(example_drawing(), np.uint8), cv2.IMREAD_COLOR),
                           cv2.COLOR_BGR2RGB)
    edges, hints = split_sketch(drawing)
    assert (edges < 128).mean() > 0.01 and hints.mask.any()
    assert {tuple(c) for c in hints.rgb[hints.mask > 0]} == {(224, 36, 40)}
