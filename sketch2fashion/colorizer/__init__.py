"""The colorizer's training data and evaluation: augmented sketch/photo pairs and their scores."""
from sketch2fashion.colorizer.augment import (
    GeometricTransform,
    SketchAugment,
    augment_from_params,
    break_strokes,
    change_line_weight,
    drop_details,
    geometric,
    jitter_line_weight,
    wobble,
)
from sketch2fashion.colorizer.dataset import ColorizerDataset, hint_options, make_loader
from sketch2fashion.colorizer.evaluate import (
    evaluate_generator,
    sample_grid,
    save_sample_grid,
    sketch_of,
)

__all__ = [
    "ColorizerDataset",
    "GeometricTransform",
    "SketchAugment",
    "augment_from_params",
    "break_strokes",
    "change_line_weight",
    "drop_details",
    "evaluate_generator",
    "geometric",
    "hint_options",
    "jitter_line_weight",
    "make_loader",
    "sample_grid",
    "save_sample_grid",
    "sketch_of",
    "wobble",
]
