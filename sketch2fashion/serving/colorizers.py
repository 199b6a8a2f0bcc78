"""Where the champions run for the API: in the API process itself, or behind the Colorizer service.

`serving.colorizer` picks one (params.yaml):

- `service` (default): the Colorizer BentoML service in its own process (`service.py`), reached
  through `bentoml.depends`: the layout for a GPU worker, or for scaling the API and the model
  apart (BentoML replicas).
- `inline`: the API process holds the champions (`ColorizerHost`) and batches concurrent
  requests with BentoML's own adaptive batching dispatcher (`CorkDispatcher`, what BentoML puts
  in front of every batchable API), then runs the batch in a worker thread. No second HTTP hop:
  the sketch arrays are neither pickled nor sent between processes, which saves a lone request
  ~2.6 ms. Under load it served 7% less on 2 CPU cores (bench/NOTES.md, item 11): the hop had
  cost almost no CPU, and the request handling and the model's Python-side work now share one
  interpreter.

Both answer the same calls (`colorize(job)`, `status()`, `stop()`), so the endpoints and the API
service do not know which one they talk to; the API's readiness reads `status()["ready"]`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sketch2fashion.serving import metrics
from sketch2fashion.serving.batching import colorize_jobs
from sketch2fashion.serving.config import ServingConfig
from sketch2fashion.serving.io_types import ColorizeJob, ColorizeResult


class ColorizerOverloaded(RuntimeError):
    """The batching queue dropped this job: it would have waited past `max_latency_ms` (503)."""


class ColorizerHost:
    """The champions of every category, loaded and kept in step with the registry, in this process.

    Sets this process up for the model first: torch's thread count and, where configured,
    glibc malloc keeping freed memory (serving/allocator.py).
    """

    def __init__(self, config: ServingConfig) -> None:
        import torch

        from sketch2fashion.serving.allocator import keep_freed_memory
        from sketch2fashion.serving.champions import ChampionBoard

        self.config = config
        torch.set_num_threads(config.threads)
        if config.keep_freed_memory:  # before any batch: big activations stop page-faulting per call
            keep_freed_memory()
        self.board = ChampionBoard(config)
        self.board.start()

    def ready(self) -> bool:
        return self.board.ready()

    def colorize(self, jobs: Sequence[ColorizeJob]) -> list[ColorizeResult]:
        """One batch, results in job order (serving/batching.py groups it by category)."""
        metrics.observe_dispatch(len(jobs))
        return [ColorizeResult(**r) for r in colorize_jobs(self.board.champions, jobs, self.config.image_size)]

    def status(self) -> dict[str, Any]:
        board = self.board
        return {"models": board.describe(), "source": board.source, "ready": board.ready(),
                "poll_seconds": self.config.poll_seconds, "last_poll_error": board.last_error}

    def stop(self) -> None:
        self.board.stop()


class InlineColorizer:
    """The champions in this process, fed by BentoML's adaptive batching dispatcher."""

    def __init__(self, host: ColorizerHost, config: ServingConfig) -> None:
        self.host = host
        self._dispatcher = None
        self._batched = None
        if config.max_batch_size > 1:
            from bentoml._internal.marshal.dispatcher import CorkDispatcher

            self._dispatcher = CorkDispatcher(
                max_latency_in_ms=config.max_latency_ms, max_batch_size=config.max_batch_size,
                fallback=_overloaded, get_batch_size=lambda _job: 1)
            self._batched = self._dispatcher(host.colorize)  # a sync callback runs in a worker thread

    async def colorize(self, job: ColorizeJob) -> ColorizeResult:
        if self._batched is None:  # batching off: one request per forward pass, as it arrives
            import anyio.to_thread

            return (await anyio.to_thread.run_sync(self.host.colorize, [job]))[0]
        return await self._batched(job)

    async def status(self) -> dict[str, Any]:
        return self.host.status()

    def stop(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.shutdown()
        self.host.stop()


class RemoteColorizer:
    """The Colorizer service, through the `bentoml.depends` proxy the API service holds."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    async def colorize(self, job: ColorizeJob) -> ColorizeResult:
        return (await self.proxy.to_async.colorize([job]))[0]

    async def status(self) -> dict[str, Any]:
        return await self.proxy.to_async.status()

    def stop(self) -> None:
        """Nothing to stop here: BentoML closes the proxy and stops the service's process."""


def _overloaded() -> ColorizeResult:
    raise ColorizerOverloaded("the colorizer queue is full (serving.batching.max_latency_ms)")
