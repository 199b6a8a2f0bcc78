"""Sketch2Fashion: hand-drawn garment sketch -> realistic photo -> matching shop products."""

__version__ = "0.1.0"
