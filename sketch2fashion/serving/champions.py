"""Which colorizer serves each category, and how a promotion in MLflow reaches the running service.

A `ChampionBoard` holds one loaded model per category in an immutable mapping that is replaced
as a whole, so a batch reads one consistent set of models while a swap happens beside it. A
background thread asks the registry every `poll_seconds` which version holds the `champion`
alias; a new version is loaded and must colorize a fixed probe sketch (right shape, finite
values) on its uncompiled form, so a broken version is refused as soon as it loads.

Compiling (torch.compile, registry/compiled.py) runs in a thread at the lowest CPU priority and
with a short GIL switch interval, so that the batches being served get the CPU and the
interpreter back within a fraction of a millisecond (`compiling_politely`). When a
category has no champion yet, the new one serves at once, uncompiled, and is compiled behind
it: the first garment never waits for the compiler (minutes on a slow CPU). When it replaces a
champion, it is compiled and probed compiled first while the old one keeps serving, then
swapped in: shoppers never meet a slower model after a promotion. A compiled graph that fails
the probe is dropped and the eager one serves. A version that fails to load or probe is
refused: logged, counted in `s2f_model_swaps_total{outcome="refused"}`, and the old model keeps
serving. A model that loaded but failed the probe is not retried until the alias
moves again (it would fail the same way); one that could not be loaded at all (an artifact
missing, truncated, unreadable for a moment) is retried with backoff, poll_seconds doubling per
failure up to RETRY_CAP_SECONDS, so a repaired artifact is picked up by itself and /readyz turns
true without a new promotion.

Models come from the MLflow registry, or, in a built Bento without a registry, from the BentoML
model store (`bento_models`); `model_source: auto` picks the registry when one is configured.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np

from sketch2fashion.colorizer.progress import progress_path, read_progress
from sketch2fashion.registry.colorizer_model import fit_input
from sketch2fashion.registry.tracking import DB_NAME, STORE_DIR, TRACKING_URI_ENV
from sketch2fashion.serving import metrics
from sketch2fashion.serving.config import ServingConfig
from sketch2fashion.serving.sketches import generator_input, probe_sketch

log = logging.getLogger("sketch2fashion.serving")
REGISTRY = "registry"
BUNDLED = "bundled"
POLL_FAILED = "the last registry poll failed; the server log has the details"
T = TypeVar("T")
RETRY_CAP_SECONDS = 600.0
"""Longest wait between two attempts to load a version that could not be loaded."""


class ModelRefused(RuntimeError):
    """A champion that cannot serve: it did not load, or it did not colorize the probe sketch."""


class LoadFailed(ModelRefused):
    """The model could not be loaded at all (retried with backoff, unlike a failed probe)."""


@dataclass(frozen=True)
class Champion:
    """A loaded colorizer and what the registry says about it."""

    category: str
    version: int | None
    epoch: int | None
    ssim: float | None
    run_id: str | None
    source: str
    model: Any = field(repr=False, compare=False)
    loaded_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        return {"category": self.category, "version": self.version, "epoch": self.epoch,
                "ssim": self.ssim, "run_id": self.run_id, "source": self.source,
                "loaded_at": round(self.loaded_at, 3), "compiled": compile_status(self.model)}


def compile_status(model: Any) -> dict[str, Any] | None:
    """What ColorizerModel says about its compiled form (None for other pyfunc models)."""
    unwrap = getattr(model, "unwrap_python_model", None)
    try:
        status = getattr(unwrap(), "compiled", None) if unwrap else None
    except Exception:  # noqa: BLE001 - not a python_model pyfunc
        return None
    return dict(status) if isinstance(status, dict) else None


def compile_model(model: Any, setting: str, batch_sizes: list[int]) -> bool:
    """Compile a loaded ColorizerModel in place (serving.compile); False when nothing was
    compiled: compile off, no compiler, a TorchScript version, or another kind of pyfunc model."""
    unwrap = getattr(model, "unwrap_python_model", None)
    try:
        python_model = unwrap() if unwrap else None
    except Exception:  # noqa: BLE001 - not a python_model pyfunc
        return False
    if not callable(getattr(python_model, "compile", None)):
        return False
    try:
        status = python_model.compile(setting, batch_sizes)
    except Exception as exc:  # noqa: BLE001 - compile: on and the compiler failed
        raise ModelRefused(f"failed to compile: {type(exc).__name__}: {exc}") from exc
    return bool(status.get("compiled"))


def uncompile_model(model: Any, why: str) -> None:
    """Undo `compile_model` (the compiled graph failed the probe): the eager runner serves again."""
    python_model = model.unwrap_python_model()
    python_model.uncompile(why)


def mark_compiling(model: Any) -> None:
    """/models says a champion serving uncompiled is being compiled in the background."""
    unwrap = getattr(model, "unwrap_python_model", None)
    try:
        python_model = unwrap() if unwrap else None
    except Exception:  # noqa: BLE001 - not a python_model pyfunc
        return
    if isinstance(getattr(python_model, "compiled", None), dict):
        python_model.compiled = {"compiled": False, "why": "compiling in the background; serving uncompiled meanwhile"}


SWITCH_INTERVAL_WHILE_COMPILING = 0.0001
"""Seconds a thread waiting for the GIL waits before the compiling thread must hand it over
(Python's default is 0.005). A compiled batch needs the GIL between its ~100 kernel calls; with
the default, a compile beside it (Python-heavy tracing) raised a 4-image batch of the demo
generator from 11.7 to 134 ms (p50); with 0.1 ms, to 28 ms, the compile taking 31 s instead of 22
(2 AMD EPYC AVX512-BF16 cores, 2026-12-07, a one-off probe: bench/NOTES.md item 16)."""


def compiling_politely(work: Callable[[], T]) -> T:
    """Run `work` (a compile) in a thread of its own at the lowest CPU priority, with a short GIL
    switch interval (process-wide, restored after), and wait for it.

    Its own thread because a thread's nice value cannot be lowered back without privileges: the
    poller that runs this keeps its normal priority for loading and probing, so the first
    champion of `make demo` is not starved by the training and indexing running beside it.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        lower_this_thread_priority()
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc

    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_WHILE_COMPILING)
    try:
        thread = threading.Thread(target=run, name="s2f-compile", daemon=True)
        thread.start()
        thread.join()
    finally:
        sys.setswitchinterval(before)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def lower_this_thread_priority(niceness: int = 19) -> None:
    """Give the calling thread (and the threads and processes it starts: torch's OpenMP team for a
    probe, Inductor's compile workers) the lowest CPU priority, where the OS has per-thread nice
    (Linux)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: run at normal priority
        log.debug("could not lower the compile thread's priority: %s", exc)


def resolve_source(config: ServingConfig) -> str:
    """`registry` when `MLFLOW_TRACKING_URI` is set or the project has its SQLite store, else `bundled`."""
    if config.model_source != "auto":
        return config.model_source
    if os.environ.get(TRACKING_URI_ENV, "").strip():
        return REGISTRY
    if (config.project_root / STORE_DIR / DB_NAME).is_file():
        return REGISTRY
    return BUNDLED


def probe(model: Any, size: int) -> None:
    """Raise ModelRefused unless `model` turns the probe sketch into a finite 3 x size x size photo."""
    sketch = probe_sketch(size)
    batch = generator_input([sketch.packed])
    try:
        out = np.asarray(model.predict(fit_input(model, batch)))
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot serve"
        raise ModelRefused(f"failed on the probe sketch: {type(exc).__name__}: {exc}") from exc
    if out.shape != (1, 3, size, size):
        raise ModelRefused(f"probe sketch gave shape {out.shape}, expected (1, 3, {size}, {size})")
    if not np.isfinite(out).all():
        raise ModelRefused("probe sketch gave non-finite values")


class ChampionBoard:
    """category -> Champion, kept in step with the registry by a background thread."""

    def __init__(self, config: ServingConfig, *, source: str | None = None,
                 loader: Callable[[str, dict[str, Any], dict[str, Any]], Any] | None = None) -> None:
        self.config = config
        self.source = source or resolve_source(config)
        self._champions: Mapping[str, Champion] = MappingProxyType({})
        self._write = threading.Lock()
        self._refused: dict[str, int | None] = {}
        self._retries: dict[str, tuple[int | None, int, float]] = {}
        """category -> (version, failed loads, time.monotonic() of the next attempt)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._load_registry_model = loader or self._load_from_registry
        self.last_sync: float | None = None
        self.last_error: str | None = None

    # -- reading ------------------------------------------------------------------------------
    @property
    def champions(self) -> Mapping[str, Champion]:
        """The current mapping; hold on to it for a whole batch (a swap replaces, never mutates)."""
        return self._champions

    def missing(self) -> list[str]:
        current = self._champions
        return [c for c in self.config.categories if c not in current]

    def ready(self) -> bool:
        return not self.missing()

    def describe(self) -> list[dict[str, Any]]:
        """One row per category; a category without a champion says how far its training has
        come (`training`, from the training run's progress file) when one is running."""
        current = self._champions
        rows = []
        for category in self.config.categories:
            champ = current.get(category)
            if champ is not None:
                rows.append(champ.describe())
                continue
            rows.append({"category": category, "version": None, "epoch": None, "ssim": None,
                         "run_id": None, "source": None, "loaded_at": None,
                         "training": read_progress(progress_path(self.config.project_root / "models", category))})
        return rows

    # -- keeping up with the registry ---------------------------------------------------------
    def start(self) -> None:
        """Load the champions in the background now, then follow the registry every poll_seconds."""
        metrics.set_champions_missing(len(self.missing()))
        self._thread = threading.Thread(target=self._run, name="s2f-champions", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            if self.source == BUNDLED and self.ready():
                return  # a Bento's models never change
            self._stop.wait(self.config.poll_seconds)

    def poll(self) -> None:
        """One sync that never raises: a failure is logged in full and kept in `last_error` as a
        fixed phrase, since /models shows it to anyone (no paths, URIs or exception text there)."""
        try:
            self.sync()
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - a registry hiccup must not kill the poller
            self.last_error = POLL_FAILED
            log.warning("champion poll failed (serving models unchanged): %s: %s", type(exc).__name__, exc)

    def sync(self) -> list[str]:
        """One poll: load and install every champion that differs from the one serving (compiled
        first when it replaces one; compiled after installing when the category had none).

        Returns the categories whose model changed.
        """
        rows = self._registry_rows() if self.source == REGISTRY else self._bundled_rows()
        changed: list[str] = []
        first: list[Champion] = []
        for row in rows:
            category, version = row["category"], row["version"]
            current = self._champions.get(category)
            if row.get("stored") is None and version is None:
                continue  # no champion yet (or the alias was removed): keep what serves
            if current is not None and current.version == version and current.run_id == row["run_id"]:
                continue
            if category in self._refused and self._refused[category] == version:
                continue
            retry = self._retries.get(category)
            if retry is not None and retry[0] == version and time.monotonic() < retry[2]:
                continue
            serving = current.version if current else "nothing"
            try:
                champion = self._load(row)
            except LoadFailed as exc:
                failures = retry[1] + 1 if retry is not None and retry[0] == version else 1
                cap = max(RETRY_CAP_SECONDS, self.config.poll_seconds)
                wait = min(self.config.poll_seconds * 2 ** (failures - 1), cap)
                self._retries[category] = (version, failures, time.monotonic() + wait)
                metrics.count_swap(category, "refused")
                log.error("could not load %s version %s (failure %d, next try in %.0f s; still serving %s): %s",
                          category, version, failures, wait, serving, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - refuse whatever went wrong, keep serving
                self._refused[category] = version
                metrics.count_swap(category, "refused")
                log.error("refused %s version %s (still serving %s): %s", category, version, serving, exc)
                continue
            self._refused.pop(category, None)
            self._retries.pop(category, None)
            if current is not None:
                self._compile(champion)  # the old champion serves until the new one is as fast
            else:
                first.append(champion)
            self._install(champion)
            changed.append(category)
        self.last_sync = time.time()
        for champion in first:  # already serving uncompiled; now make each fast
            self._compile(champion)
        return changed

    def _compile(self, champion: Champion) -> None:
        """Compile a champion in place (the runner swap is one attribute assignment; calls in
        flight finish on the eager one). A compiled graph that fails the probe is dropped and the
        eager one serves."""
        if self.config.compile == "off":
            return
        try:
            compiled = compiling_politely(lambda: compile_model(champion.model, self.config.compile,
                                                                list(self.config.compile_batch_sizes)))
        except ModelRefused as exc:
            log.error("%s version %s serves uncompiled: %s", champion.category, champion.version, exc)
            return
        if not compiled:
            return
        try:
            probe(champion.model, self.config.image_size)
        except ModelRefused as exc:
            uncompile_model(champion.model, f"compiled graph failed the probe: {exc}")
            log.error("%s version %s: the compiled graph failed the probe; serving uncompiled", champion.category,
                      champion.version)
            return
        log.info("%s version %s now serves compiled", champion.category, champion.version)

    def _install(self, champion: Champion) -> None:
        with self._write:
            old = self._champions.get(champion.category)
            self._champions = MappingProxyType({**self._champions, champion.category: champion})
        metrics.set_model_version(champion.category, champion.version, old.version if old else None)
        metrics.count_swap(champion.category, "loaded")
        metrics.set_champions_missing(len(self.missing()))
        log.info("%s now served by version %s (was %s)", champion.category, champion.version,
                 old.version if old else "none")

    def _load(self, row: dict[str, Any]) -> Champion:
        category = row["category"]
        settings = {**self.config.model_config, "compile": "off"}  # compiled below, once probed
        try:
            if self.source == REGISTRY:
                model = self._load_registry_model(category, row, settings)
            else:
                from sketch2fashion.serving.bento_models import load_stored

                model = load_stored(row["stored"], settings)
        except Exception as exc:  # noqa: BLE001
            raise LoadFailed(f"failed to load: {type(exc).__name__}: {exc}") from exc
        probe(model, self.config.image_size)
        if self.config.compile != "off":
            mark_compiling(model)  # it serves uncompiled from now on; sync() compiles it next
        return Champion(category=category, version=row["version"], epoch=row.get("epoch"),
                        ssim=row.get("ssim"), run_id=row.get("run_id"), source=self.source, model=model)

    def _registry_rows(self) -> list[dict[str, Any]]:
        from sketch2fashion.registry.promotion import list_champions

        if self._client is None:
            from sketch2fashion.registry.tracking import configure

            self._client = configure(self.config.project_root)
        return list_champions(self._client, self.config.categories)

    def _load_from_registry(self, category: str, row: dict[str, Any], settings: dict[str, Any]) -> Any:
        import mlflow.pyfunc

        from sketch2fashion.registry.promotion import registered_model_name

        uri = f"models:/{registered_model_name(category)}/{row['version']}"
        return mlflow.pyfunc.load_model(uri, model_config=settings)

    def _bundled_rows(self) -> list[dict[str, Any]]:
        from sketch2fashion.serving.bento_models import stored_info, stored_model

        rows = []
        for category in self.config.categories:
            stored = stored_model(category)
            if stored is None:
                if category not in self._refused:
                    self._refused[category] = None
                    log.error("no bundled colorizer for %s: build the Bento with `s2f bento build` "
                              "(or serve with a registry: MLFLOW_TRACKING_URI)", category)
                continue
            rows.append({"category": category, **stored_info(stored), "stored": stored})
        return rows
