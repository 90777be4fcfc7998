"""qbsync.lazy.Lazy: one build per container, even under concurrent first use; clear() rebuilds."""

from __future__ import annotations

import threading

import pytest
from qbsync.lazy import Lazy


def test_built_once_under_concurrent_first_use_and_again_after_clear() -> None:
    builds: list[object] = []
    gate = threading.Barrier(8)

    def build() -> object:
        value = object()
        builds.append(value)
        return value

    lazy = Lazy(build)
    seen: list[object] = []

    def use() -> None:
        gate.wait()
        seen.append(lazy.get())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and seen == [builds[0]] * 8
    lazy.clear()
    assert lazy.get() is not builds[0] and len(builds) == 2


def test_a_failed_build_is_not_cached() -> None:
    calls = []

    def build() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("settings missing")
        return "built"

    lazy = Lazy(build)
    with pytest.raises(RuntimeError, match="settings missing"):
        lazy.get()
    assert lazy.get() == "built" and len(calls) == 2
