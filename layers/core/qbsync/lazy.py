"""Per-container singletons: built on first use from the deployment's settings, forgotten on demand.

:mod:`qbsync.wiring` keeps one instance of every service and shared part per Lambda container.
:class:`Lazy` is that pattern once: thread-safe first build (the local stack and tests call handlers from
several threads), ``clear()`` (through ``qbsync.wiring.reset``) for tests that change the environment.
Nothing is built at import, so a handler module imports without AWS settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Lazy"]

T = TypeVar("T")


class Lazy(Generic[T]):
    """``Lazy(build).get()`` builds once (under a lock) and then returns the same instance."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None
