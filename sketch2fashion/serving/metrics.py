"""The service's own Prometheus series (BentoML adds its request and batching series itself).

Every series is created on first use, never at import: BentoML runs each service in its own
process with `PROMETHEUS_MULTIPROC_DIR` set, and prometheus_client picks single- or
multi-process mode when it is first imported. (prometheus_client is used directly: BentoML
1.4.39 deprecates its `bentoml.metrics` re-export in favour of it.) The entry service's
/metrics merges the files of all processes, so a series set in the Colorizer service's process
(`serving.colorizer: service`) shows on the public /metrics as one set in the API process does.

Label values are bounded: `category` is a configured category, `auto` (the sketch classifier
behind it), or `none`; `outcome` is one of OUTCOMES; `version` is a registry version number;
`model` is a registered model (`colorizer-<category>`, `sketch-classifier`, `catalog-encoder`).
"""
from __future__ import annotations

import functools
from typing import Any

OUTCOMES = ("ok", "bad_request", "unavailable", "error")
NO_CATEGORY = "none"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
HINT_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55)

# name -> (kind, help, labels, extra kwargs). The names are what monitoring/ refers to.
SERIES: dict[str, tuple[str, str, tuple[str, ...], dict[str, Any]]] = {
    "s2f_requests": ("counter", "Public API requests by endpoint, garment category and outcome",
                     ("endpoint", "category", "outcome"), {}),
    "s2f_generation_seconds": ("histogram", "Time to colorize one sketch, batching wait included",
                               ("category",), {"buckets": LATENCY_BUCKETS}),
    "s2f_search_seconds": ("histogram", "Time to answer one catalog search",
                           ("endpoint",), {"buckets": LATENCY_BUCKETS}),
    "s2f_batch_size": ("histogram", "Sketches per colorizer forward pass (one category each)",
                       ("category",), {"buckets": BATCH_BUCKETS}),
    "s2f_dispatch_batch_size": ("histogram", "Sketches per batch as the adaptive batching dispatcher released it "
                                "(all categories together; the API process's or the Colorizer service's)",
                                (), {"buckets": BATCH_BUCKETS}),
    "s2f_forward_seconds": ("histogram", "One colorizer forward pass over a batch, conversions included, "
                            "without batching wait or transport (sum / s2f_batch_size sum = model time per sketch)",
                            ("category",), {"buckets": LATENCY_BUCKETS}),
    "s2f_hints_per_sketch": ("histogram", "Colour marks (dots, strokes) per uploaded sketch",
                             (), {"buckets": HINT_BUCKETS}),
    "s2f_model_info": ("gauge", "1 for the colorizer version serving each category, 0 for replaced ones",
                       ("category", "version"), {"multiprocess_mode": "livemax"}),
    "s2f_served_model_info": ("gauge", "1 for the registry version each served model runs (colorizer-<category>, "
                              "sketch-classifier, catalog-encoder of the catalog index), 0 for replaced ones",
                              ("model", "version"), {"multiprocess_mode": "livemax"}),
    "s2f_champions_missing": ("gauge", "Configured categories without a loaded colorizer",
                              (), {"multiprocess_mode": "livemax"}),
    "s2f_model_swaps": ("counter", "Champion changes picked up from the registry, by category (`auto`: the sketch "
                        "classifier) and outcome (loaded, or refused when the new model failed to load or to pass "
                        "the probe)",
                        ("category", "outcome"), {}),
    "s2f_catalog_products": ("gauge", "Products in the catalog index being served",
                             (), {"multiprocess_mode": "livemax"}),
}


@functools.cache
def series(name: str) -> Any:
    """The prometheus_client metric `name` of SERIES, created on first use."""
    import prometheus_client

    kind, doc, labels, extra = SERIES[name]
    factory = {"counter": prometheus_client.Counter, "histogram": prometheus_client.Histogram,
               "gauge": prometheus_client.Gauge}[kind]
    return factory(name, doc, labelnames=labels, **extra)


def exported_names() -> set[str]:
    """Sample names as they appear on /metrics (counters get `_total`, histograms three series)."""
    names: set[str] = set()
    for name, (kind, *_rest) in SERIES.items():
        if kind == "counter":
            names.add(f"{name}_total")
        elif kind == "histogram":
            names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            names.add(name)
    return names


def count_request(endpoint: str, category: str | None, outcome: str) -> None:
    series("s2f_requests").labels(endpoint=endpoint, category=category or NO_CATEGORY,
                                  outcome=outcome).inc()


def observe_generation(category: str, seconds: float) -> None:
    series("s2f_generation_seconds").labels(category=category).observe(seconds)


def observe_search(endpoint: str, seconds: float) -> None:
    series("s2f_search_seconds").labels(endpoint=endpoint).observe(seconds)


def observe_batch(category: str, size: int) -> None:
    series("s2f_batch_size").labels(category=category).observe(size)


def observe_dispatch(size: int) -> None:
    series("s2f_dispatch_batch_size").observe(size)


def observe_forward(category: str, seconds: float) -> None:
    series("s2f_forward_seconds").labels(category=category).observe(seconds)


def observe_hints(count: int) -> None:
    series("s2f_hints_per_sketch").observe(count)


def set_model_version(category: str, version: int | None, previous: int | None) -> None:
    """Mark `version` as serving `category` (1) and the replaced version as gone (0).

    Multi-process gauges cannot drop a label set, hence 0 rather than removal; dashboards
    select `s2f_model_info == 1`.
    """
    gauge = series("s2f_model_info")
    if previous is not None and previous != version:
        gauge.labels(category=category, version=str(previous)).set(0)
    if version is not None:
        gauge.labels(category=category, version=str(version)).set(1)
    from sketch2fashion.registry.promotion import registered_model_name

    set_served_model(registered_model_name(category), version, previous)


def set_served_model(model: str, version: int | None, previous: int | None) -> None:
    """Mark `version` of registered model `model` as serving (1) and the replaced one as gone (0)."""
    gauge = series("s2f_served_model_info")
    if previous is not None and previous != version:
        gauge.labels(model=model, version=str(previous)).set(0)
    if version is not None:
        gauge.labels(model=model, version=str(version)).set(1)


def set_champions_missing(count: int) -> None:
    series("s2f_champions_missing").set(count)


def count_swap(category: str, outcome: str) -> None:
    series("s2f_model_swaps").labels(category=category, outcome=outcome).inc()


def set_catalog_products(count: int) -> None:
    series("s2f_catalog_products").set(count)
