"""The API's concurrency limit: BentoML's own, with `Retry-After` on its 429 answers.

BentoML refuses a request beyond `traffic.max_concurrency` with 429 `{"error": "Too many
requests"}` from a middleware outside every app and middleware a service can add, so nothing
inside could add the header a client needs to back off. The API service therefore leaves
BentoML's `max_concurrency` unset and installs this subclass of the same middleware (same
semaphore, same paths exempt) through `add_asgi_middleware`; it only adds `Retry-After`.
The Colorizer and Catalog services keep BentoML's: their refusals reach the API, which answers
them 503 with `Retry-After` (serving/endpoints.py).
"""
from __future__ import annotations

from typing import Any

from bentoml._internal.server.http.traffic import MaxConcurrencyMiddleware

TOO_MANY = 429


class ConcurrencyLimit(MaxConcurrencyMiddleware):
    """BentoML's max-concurrency middleware whose 429 answers say when to come back."""

    def __init__(self, app: Any, max_concurrency: int, retry_after: int, skip_paths: list[str] | None = None) -> None:
        super().__init__(app, max_concurrency=max_concurrency, skip_paths=skip_paths)
        self.retry_after = str(int(retry_after)).encode("ascii")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)

        async def send_with_retry_after(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == TOO_MANY:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"retry-after"]
                message = {**message, "headers": [*headers, (b"retry-after", self.retry_after)]}
            await send(message)

        return await super().__call__(scope, receive, send_with_retry_after)
