"""Intuit's rate limits in the simulator, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import threading

import pytest

from local.qbo_sim.limits import LimitConfig, Permit, RateLimiter, Throttled


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(clock: FakeClock, **overrides: object) -> RateLimiter:
    # Generous defaults so that each test trips exactly the limit it is about.
    values = {
        "requests_per_minute": 10_000,
        "requests_per_second": 10_000,
        "concurrent": 10_000,
        "batch_per_minute": 10_000,
        "batch_per_minute_realm": 10_000,
    } | overrides
    return RateLimiter(LimitConfig(**values), clock=clock)  # type: ignore[arg-type]


def admit(lim: RateLimiter, n: int, realm: str = "r1", app: str = "a1", *, is_batch: bool = False) -> None:
    for _ in range(n):
        lim.acquire(realm, app, is_batch=is_batch).release()


def test_defaults_are_intuits_published_values() -> None:
    cfg = LimitConfig()
    assert (cfg.enabled, cfg.requests_per_minute, cfg.requests_per_second, cfg.concurrent) == (
        True,
        500,
        10,
        10,
    )
    assert (cfg.batch_per_minute, cfg.batch_per_minute_realm, cfg.time_scale) == (40, 120, 1.0)


def test_per_second_trips_at_threshold_per_realm_and_app() -> None:
    clock = FakeClock()
    lim = limiter(clock, requests_per_second=10)
    admit(lim, 10)
    with pytest.raises(Throttled) as err:
        lim.acquire("r1", "a1")
    assert err.value.reason == "requests_per_second"
    assert err.value.retry_after == pytest.approx(1.0)
    admit(lim, 10, app="a2")  # another app on the same realm has its own budget
    admit(lim, 10, realm="r2")  # and so does another realm


def test_per_second_window_slides() -> None:
    clock = FakeClock()
    lim = limiter(clock, requests_per_second=2)
    admit(lim, 1)
    clock.advance(0.5)
    admit(lim, 1)
    with pytest.raises(Throttled):
        lim.acquire("r1", "a1")
    clock.advance(0.5)  # the first request leaves the window exactly one second after it came in
    admit(lim, 1)
    with pytest.raises(Throttled):
        lim.acquire("r1", "a1")
    clock.advance(0.5)
    admit(lim, 1)


def test_per_minute_is_per_realm_across_apps() -> None:
    clock = FakeClock()
    lim = limiter(clock, requests_per_minute=500)
    for i in range(5):
        admit(lim, 100, app=f"app{i}")
    with pytest.raises(Throttled) as err:
        lim.acquire("r1", "app-new")
    assert err.value.reason == "requests_per_minute"
    admit(lim, 1, realm="r2")
    clock.advance(59.999)
    with pytest.raises(Throttled):
        lim.acquire("r1", "app0")
    clock.advance(0.001)
    admit(lim, 500, app="app0")


def test_throttled_requests_are_not_counted() -> None:
    clock = FakeClock()
    lim = limiter(clock, requests_per_second=1)
    admit(lim, 1)
    for _ in range(5):
        with pytest.raises(Throttled):
            lim.acquire("r1", "a1")
    clock.advance(1)
    admit(lim, 1)


def test_concurrency_slots_and_release() -> None:
    clock = FakeClock()
    lim = limiter(clock, concurrent=10)
    permits = [lim.acquire("r1", "a1") for _ in range(10)]
    assert lim.in_flight("r1", "a1") == 10
    with pytest.raises(Throttled) as err:
        lim.acquire("r1", "a1")
    assert err.value.reason == "concurrent"
    lim.acquire("r1", "a2").release()  # concurrency is per realm+app
    permits[0].release()
    permits[0].release()  # idempotent: does not free a second slot
    assert lim.in_flight("r1", "a1") == 9
    extra = lim.acquire("r1", "a1")
    with pytest.raises(Throttled):
        lim.acquire("r1", "a1")
    for p in [*permits[1:], extra]:
        p.release()
    assert lim.in_flight("r1", "a1") == 0


def test_permit_context_manager_frees_slot_on_exception() -> None:
    clock = FakeClock()
    lim = limiter(clock, concurrent=1)
    with pytest.raises(RuntimeError), lim.acquire("r1", "a1") as permit:
        assert isinstance(permit, Permit)
        raise RuntimeError("handler failed")
    assert permit.released
    with lim.acquire("r1", "a1"):
        assert lim.in_flight("r1", "a1") == 1
    assert lim.in_flight("r1", "a1") == 0


def test_batch_per_app_per_minute() -> None:
    clock = FakeClock()
    lim = limiter(clock, batch_per_minute=40)
    admit(lim, 40, is_batch=True)
    with pytest.raises(Throttled) as err:
        lim.acquire("r1", "a1", is_batch=True)
    assert err.value.reason == "batch_per_minute"
    admit(lim, 5)  # plain requests are not batch calls
    admit(lim, 40, app="a2", is_batch=True)
    clock.advance(60)
    admit(lim, 40, is_batch=True)


def test_batch_per_realm_per_minute() -> None:
    clock = FakeClock()
    lim = limiter(clock, batch_per_minute=40, batch_per_minute_realm=120)
    for app in ("a1", "a2", "a3"):
        admit(lim, 40, app=app, is_batch=True)
    with pytest.raises(Throttled) as err:
        lim.acquire("r1", "a4", is_batch=True)
    assert err.value.reason == "batch_per_minute_realm"
    admit(lim, 1, realm="r2", app="a4", is_batch=True)


def test_batch_calls_count_against_the_request_limits() -> None:
    clock = FakeClock()
    lim = limiter(clock, requests_per_minute=5)
    admit(lim, 5, is_batch=True)
    with pytest.raises(Throttled) as err:
        lim.acquire("r1", "a1")
    assert err.value.reason == "requests_per_minute"


def test_time_scale_shortens_windows() -> None:
    clock = FakeClock()
    lim = limiter(clock, requests_per_minute=3, time_scale=60.0)  # a minute lasts one second
    admit(lim, 3)
    with pytest.raises(Throttled) as err:
        lim.acquire("r1", "a1")
    assert err.value.retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    admit(lim, 3)


def test_disabled_never_throttles_and_holds_no_slot() -> None:
    clock = FakeClock()
    lim = limiter(clock, enabled=False, requests_per_second=1, concurrent=1)
    permits = [lim.acquire("r1", "a1", is_batch=True) for _ in range(100)]
    assert lim.in_flight("r1", "a1") == 0
    for p in permits:
        p.release()


def test_configure_applies_new_values_and_keeps_counts() -> None:
    clock = FakeClock()
    lim = limiter(clock, requests_per_second=5)
    admit(lim, 3)
    lim.configure(LimitConfig(requests_per_second=3, requests_per_minute=500))
    with pytest.raises(Throttled):
        lim.acquire("r1", "a1")
    lim.configure(LimitConfig(enabled=False))
    admit(lim, 50)
    assert lim.config.enabled is False


@pytest.mark.parametrize(
    "bad",
    [
        {"requests_per_second": 0},
        {"concurrent": -1},
        {"batch_per_minute": 1.5},
        {"time_scale": 0},
        {"requests_per_minute": True},
        {"time_scale": float("inf")},
    ],
)
def test_invalid_config_is_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        LimitConfig(**bad)


def test_thread_safety_never_admits_more_than_the_limit() -> None:
    clock = FakeClock()
    lim = limiter(clock, requests_per_minute=200)
    admitted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        ok = 0
        for _ in range(100):
            try:
                lim.acquire("r1", "a1").release()
                ok += 1
            except Throttled:
                pass
        with lock:
            admitted.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 200
    assert lim.in_flight("r1", "a1") == 0
