"""Procedural demo data: product-style garment photos on white, plus a Merchant-style feed.

The project ships no photos; `s2f demo-data OUT` renders its own, deterministically by seed.
"""
from sketch2fashion.demo.feed import make_demo_dataset, sample_spec
from sketch2fashion.demo.garments import CATEGORIES, GarmentSpec
from sketch2fashion.demo.render import PALETTE, garment_regions, render_garment

__all__ = [
    "CATEGORIES", "PALETTE", "GarmentSpec", "garment_regions", "make_demo_dataset", "render_garment",
    "sample_spec",
]
