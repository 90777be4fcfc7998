"""Three workers share one realm's budget through the limiter's DynamoDB counters on the moto server:
the requests they are let through never exceed the window limits, and those that find no slot within the
wait bound get Throttled with a retry-after."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter

import boto3
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Throttled
from qbsync.qbo.ratelimit import RateLimits, RealmRateLimiter
from qbsync.repositories.rate_windows import RateWindows

from tests.unit.connection.support import create_table_from_template

WORKERS = 3
PER_WORKER = 12
LIMITS = RateLimits(per_window=2, window_seconds=0.25, per_minute=24, max_wait=2.0)


def test_three_workers_never_exceed_the_shared_windows(moto_server: str) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=moto_server, region_name="us-east-1")
    name = f"sync-state-rate-{uuid.uuid4().hex[:8]}"
    create_table_from_template(ddb, "SyncStateTable", name)
    realm = f"realm-{uuid.uuid4().hex[:8]}"

    local = threading.local()

    def clock() -> float:
        # the limiter reads the clock once per attempt: the last reading before acquire() returns is
        # the instant whose windows it counted the request in
        local.now = time.time()
        return float(local.now)

    admitted: list[float] = []
    throttled: list[Throttled] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        # each worker is a separate "container": its own adapter, client and limiter
        client = boto3.client("dynamodb", endpoint_url=moto_server, region_name="us-east-1")
        limiter = RealmRateLimiter(RateWindows(DynamoTable(name, client=client)), LIMITS, clock=clock)
        try:
            for _ in range(PER_WORKER):
                try:
                    limiter.acquire(realm)
                except Throttled as err:
                    with lock:
                        throttled.append(err)
                    continue
                with lock:
                    admitted.append(local.now)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures

    assert len(admitted) + len(throttled) == WORKERS * PER_WORKER
    per_window = Counter(math.floor(at / LIMITS.window_seconds) for at in admitted)
    per_minute = Counter(math.floor(at / 60) for at in admitted)
    assert max(per_window.values()) <= LIMITS.per_window
    assert max(per_minute.values()) <= LIMITS.per_minute
    # Intuit counts a sliding second: at most 5 windows of 2 fit in one
    ordered = sorted(admitted)
    assert max(sum(1 for b in ordered[i:] if b - a < 1.0) for i, a in enumerate(ordered)) <= 10
    # 36 requests against 24 per minute: unless the run straddled a minute boundary, 12 were refused
    if len(per_minute) == 1:
        assert len(admitted) == LIMITS.per_minute and len(throttled) == 12
    for err in throttled:
        assert err.realm_id == realm and err.retry_after is not None and 0 < err.retry_after <= 60
    # the counters agree with what the workers saw
    table = DynamoTable(name, client=ddb)
    counted = sum(
        int(item["count"])
        for item in table.query(key_condition="pk = :pk", values={":pk": f"RATE#{realm}"})
        if str(item["sk"]).startswith("M#")
    )
    assert counted == len(admitted)
