"""Edge maps and colour hints of the procedural demo garments: the data the demo pipeline trains on."""
from __future__ import annotations

import numpy as np
import pytest

from sketch2fashion.demo import render_garment, sample_spec
from sketch2fashion.imaging.edges import ink_fraction, sketch_edges
from sketch2fashion.imaging.hints import simulate_hints
from sketch2fashion.imaging.outline import outline_closure

CATEGORIES = ("top", "pants", "skirt", "hat")


def demo_garments(category: str, count: int = 8, size: int = 256):
    rng = np.random.default_rng(1234)
    for _ in range(count):
        spec = sample_spec(category, rng)
        yield spec, *render_garment(spec, size)


@pytest.mark.parametrize("category", CATEGORIES)
def test_demo_edge_maps_are_non_empty_mostly_white_and_closed(category):
    closures = []
    for spec, photo, mask in demo_garments(category):
        edges = sketch_edges(photo, mask, title=spec.color)
        ink = ink_fraction(edges)
        assert 0.005 < ink < 0.25, f"{category} ink fraction {ink:.3f}"
        assert set(np.unique(edges)) <= {0, 255}
        closures.append(outline_closure(edges, mask))
    assert min(closures) > 0.95, closures


@pytest.mark.parametrize("category", CATEGORIES)
def test_demo_hints_lie_on_the_garment(category):
    for index, (_, photo, mask) in enumerate(demo_garments(category, count=6)):
        hints = simulate_hints(photo, mask, np.random.default_rng(index), n=24)
        hinted = hints.mask.astype(bool)
        assert hinted.any()
        assert not (hinted & (mask == 0)).any(), "a hint pixel fell off the garment"
