"""The server's face of the core: what the API and the web UI share.

``Service`` runs the core's blocking work (models, the store, imports) in a small thread pool,
so the event loop keeps answering other requests while one article is analysed, and refuses new
analyses with 503 when too many are queued. The API's and the UI's routes reach it through
``service_of(request)``; app.py builds it at start-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Request

from spinlens.config import Settings
from spinlens.core import Analysis, Spinlens, Submission

T = TypeVar("T")

API_PREFIX = "/api/v1"


class ServerBusy(Exception):
    """Too many analyses are queued: the client should retry later."""


class ApiError(Exception):
    """An error answer with its status, stable code and one-line message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class Service:
    """The core (``spinlens``) with a bounded queue of analyses in front of it."""

    def __init__(self, spinlens: Spinlens) -> None:
        self.spinlens = spinlens
        self.executor = ThreadPoolExecutor(spinlens.settings.workers, thread_name_prefix="spinlens")
        self.pending = 0

    @property
    def settings(self) -> Settings:
        return self.spinlens.settings

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the worker pool: model work never runs on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, fn, *args)

    async def analyze(
        self,
        submission: Submission,
        techniques_model: str | None = None,
        sensitivity: str | None = None,
    ) -> Analysis:
        """Analyse and keep in the store; ServerBusy when the queue is full."""
        if self.pending >= self.settings.max_pending:
            raise ServerBusy
        self.pending += 1
        try:
            return await self.run(self._analyze, submission, techniques_model, sensitivity)
        finally:
            self.pending -= 1

    def _analyze(
        self, submission: Submission, techniques_model: str | None, sensitivity: str | None
    ) -> Analysis:
        return self.spinlens.analyze_submission(
            submission, save=True, techniques_model=techniques_model, sensitivity=sensitivity
        )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def service_of(request: Request) -> Service:
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None:
        raise ApiError(503, "starting", "the server is still loading its model")
    return service
