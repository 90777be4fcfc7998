"""The write coalescer's barrier (qbsync.qbo.batching): which writes of which threads leave as one batch call,
and what each waiting thread gets back. Fake batch clients, real threads; nothing sleeps: threads meet at
the coalescer's own barrier and at ``threading.Event`` s, and are joined."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from qbsync.errors import QboValidationError, ServiceUnavailable, StaleObject, UncertainOutcome
from qbsync.qbo.batching import CoalescingQboClient, WriteCoalescer, batch_request_id
from qbsync.qbo.client import BatchItemResult, BatchOperation

from tests.unit.qbo.conftest import Canned, ScriptedAdapter

REALM = "9130350000000001"
JOIN_SECONDS = 10  # a hung thread fails the test instead of hanging it (never a timing assertion)


class FakeBatchClient:
    """The part of QboClient the coalescer uses: ``batch`` answers every create with an object, or with the
    error a rule gives for the item's body, or raises what ``fail_call`` says."""

    realm_id = REALM

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[BatchOperation]]] = []
        self.item_errors: dict[str, Exception] = {}  # DisplayName → error of that item
        self.fail_call: Exception | None = None
        self.unanswered: set[str] = set()  # DisplayNames QBO leaves out of its answer
        self._lock = threading.Lock()

    def batch(self, operations: list[BatchOperation], *, request_id: str) -> list[BatchItemResult]:
        with self._lock:
            self.calls.append((request_id, list(operations)))
        if self.fail_call is not None:
            raise self.fail_call
        results = []
        for op in operations:
            name = (op.body or {}).get("DisplayName", "")
            if name in self.item_errors:
                results.append(BatchItemResult(op.bid, op, error=self.item_errors[name]))
            elif name in self.unanswered:
                results.append(BatchItemResult(op.bid, op, error=UncertainOutcome("not answered")))
            else:
                results.append(BatchItemResult(op.bid, op, data={"Id": f"id-{name}", "DisplayName": name}))
        return results

    @property
    def sizes(self) -> list[int]:
        return [len(ops) for _, ops in self.calls]


def _create(name: str) -> BatchOperation:
    return BatchOperation.create("queued", "Customer", {"DisplayName": name})


def _run(parties: list[Callable[[], Any]], coalescer: WriteCoalescer) -> list[Any]:
    """Run each callable on its own taking-part thread; what each returned or raised, in order."""
    results: list[Any] = [None] * len(parties)

    def party(index: int, work: Callable[[], Any]) -> None:
        with coalescer.party():
            try:
                results[index] = work()
            except Exception as err:  # the test inspects it
                results[index] = err

    threads = [threading.Thread(target=party, args=(i, w)) for i, w in enumerate(parties)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_SECONDS)
    assert not any(t.is_alive() for t in threads), "a party never got its answer"
    return results


def _writer(coalescer: WriteCoalescer, client: Any, name: str) -> Callable[[], Any]:
    return lambda: coalescer.submit(client, _create(name), f"rid-{name}")


def test_writes_of_every_party_go_out_as_one_batch_and_each_gets_its_own_object() -> None:
    client, coalescer = FakeBatchClient(), WriteCoalescer(5)

    results = _run([_writer(coalescer, client, f"c{i}") for i in range(5)], coalescer)

    assert client.sizes == [5]
    assert [r["Id"] for r in results] == [f"id-c{i}" for i in range(5)]


def test_the_barrier_waits_for_a_busy_party_and_not_for_one_that_left() -> None:
    """A party busy elsewhere (not writing yet) holds the batch until it writes; one that leaves without
    writing lets the others go."""
    client, coalescer = FakeBatchClient(), WriteCoalescer(4)
    go = threading.Event()

    def busy_then_write() -> Any:
        go.wait(JOIN_SECONDS)  # released by the party that leaves
        return coalescer.submit(client, _create("late"), "rid-late")

    def leave() -> None:
        go.set()

    results = _run(
        [_writer(coalescer, client, "a"), _writer(coalescer, client, "b"), busy_then_write, leave], coalescer
    )

    assert client.sizes == [3]  # a and b waited for the busy party; nobody waited for the one that left
    assert results[2]["Id"] == "id-late"


def test_a_full_batch_goes_out_without_waiting_for_the_rest() -> None:
    client, coalescer = FakeBatchClient(), WriteCoalescer(5, max_items=2)

    _run([_writer(coalescer, client, f"c{i}") for i in range(5)], coalescer)

    assert sorted(client.sizes) == [1, 2, 2]


def test_a_refused_item_fails_only_its_own_write() -> None:
    client, coalescer = FakeBatchClient(), WriteCoalescer(3)
    refused = QboValidationError("Duplicate Name Exists Error", qbo_code="6240")
    client.item_errors["dup"] = refused
    client.unanswered.add("lost")

    results = _run(
        [
            _writer(coalescer, client, "ok"),
            _writer(coalescer, client, "dup"),
            _writer(coalescer, client, "lost"),
        ],
        coalescer,
    )

    assert client.sizes == [3]
    assert results[0]["Id"] == "id-ok"
    assert results[1] is refused
    assert isinstance(results[2], UncertainOutcome) and results[2].maybe_applied


def test_a_failed_call_is_every_items_error_each_thread_its_own_copy() -> None:
    client, coalescer = FakeBatchClient(), WriteCoalescer(3)
    client.fail_call = UncertainOutcome("lost after commit", realm_id=REALM)

    results = _run([_writer(coalescer, client, f"c{i}") for i in range(3)], coalescer)

    assert all(isinstance(r, UncertainOutcome) and r.maybe_applied for r in results)
    assert len({id(r) for r in results}) == 3
    assert all(r.realm_id == REALM for r in results)


def test_the_batch_requestid_is_a_function_of_its_items_so_a_resend_replays() -> None:
    first, second = FakeBatchClient(), FakeBatchClient()
    one, two = WriteCoalescer(3), WriteCoalescer(3)

    _run([_writer(one, first, n) for n in ("x", "y", "z")], one)
    _run([_writer(two, second, n) for n in ("z", "x", "y")], two)

    (rid_1, ops_1), (rid_2, ops_2) = first.calls[0], second.calls[0]
    assert rid_1 == rid_2 == batch_request_id(["rid-x", "rid-y", "rid-z"])
    assert len(rid_1) <= 36
    assert [op.body for op in ops_1] == [op.body for op in ops_2]  # same order, same bIds
    assert [op.bid for op in ops_1] == ["0", "1", "2"]
    assert batch_request_id(["rid-x", "rid-y"]) != rid_1


def test_two_writes_of_one_object_never_share_a_batch() -> None:
    client, coalescer = FakeBatchClient(), WriteCoalescer(2)

    def update(token: str) -> Callable[[], Any]:
        body = {"Id": "58", "SyncToken": token, "DisplayName": "same"}
        op = BatchOperation.update("queued", "Customer", body)
        return lambda: coalescer.submit(client, op, f"rid-upd-{token}")

    _run([update("0"), update("1")], coalescer)

    assert client.sizes == [1, 1]


def test_a_thread_that_does_not_take_part_cannot_queue_and_parties_are_bounded() -> None:
    coalescer = WriteCoalescer(1)
    with pytest.raises(ValueError, match="takes part"):
        coalescer.submit(FakeBatchClient(), _create("x"), "rid-x")  # type: ignore[arg-type]
    with coalescer.party():
        assert coalescer.takes_part()
    assert not coalescer.takes_part()
    with pytest.raises(ValueError, match="joined already"), coalescer.party():
        pass


# ---------------------------------------------------------------------------- the client


class _Tokens:
    def access_token(self) -> str:
        return "AT-unit"

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise AssertionError("no 401 in these tests")


def _client(session: Any, coalescer: WriteCoalescer) -> CoalescingQboClient:
    return CoalescingQboClient(
        coalescer=coalescer, base_url="https://qbo.example", realm_id=REALM, tokens=_Tokens(), session=session
    )


def _batch_answer(request: Any) -> Canned:
    import json

    items = json.loads(request.body)["BatchItemRequest"]
    answer = []
    for item in items:
        if item["Customer"]["DisplayName"] == "stale":
            fault = {"Error": [{"Message": "Stale Object Error", "code": "5010", "Detail": "x"}]}
            answer.append({"bId": item["bId"], "Fault": {**fault, "type": "ValidationFault"}})
        else:
            answer.append(
                {"bId": item["bId"], "Customer": {"Id": "71", **item["Customer"], "SyncToken": "1"}}
            )
    return Canned(200, {"BatchItemResponse": answer, "time": "t"})


def test_the_client_batches_the_writes_of_a_party_and_sends_others_alone(
    session: Any, adapter: ScriptedAdapter
) -> None:
    coalescer = WriteCoalescer(2)
    client = _client(session, coalescer)
    adapter.queue(Canned(200, {"Customer": {"Id": "9", "DisplayName": "alone"}, "time": "t"}))

    assert client.create("Customer", {"DisplayName": "alone"}, request_id="rid-alone")["Id"] == "9"
    assert adapter.path() == f"/v3/company/{REALM}/customer"

    adapter.queue(_batch_answer)
    new = {"DisplayName": "new"}
    upd = {"Id": "71", "SyncToken": "0", "DisplayName": "stale"}
    results = _run(
        [
            lambda: client.create("Customer", new, request_id="rid-new"),
            lambda: client.update("Customer", upd, request_id="rid-upd"),
        ],
        coalescer,
    )

    assert adapter.path() == f"/v3/company/{REALM}/batch" and len(adapter.requests) == 2
    assert adapter.query()["requestid"] == batch_request_id(["rid-new", "rid-upd"])
    assert results[0]["Id"] == "71"
    assert isinstance(results[1], StaleObject)  # 5010 on the item: what a single update raises


def test_a_batch_call_that_keeps_failing_is_every_writes_uncertain_outcome(
    session: Any, adapter: ScriptedAdapter
) -> None:
    coalescer = WriteCoalescer(2)
    client = CoalescingQboClient(
        coalescer=coalescer,
        base_url="https://qbo.example",
        realm_id=REALM,
        tokens=_Tokens(),
        session=session,
        max_attempts=2,
        sleep=lambda _: None,
    )
    adapter.queue(Canned(503, "<html>down</html>"), Canned(503, "<html>down</html>"))

    results = _run(
        [
            lambda: client.create("Customer", {"DisplayName": "a"}, request_id="rid-a"),
            lambda: client.create("Customer", {"DisplayName": "b"}, request_id="rid-b"),
        ],
        coalescer,
    )

    assert len(adapter.requests) == 2  # one call, retried with the same requestid
    assert adapter.query(0)["requestid"] == adapter.query(1)["requestid"]
    assert all(isinstance(r, UncertainOutcome | ServiceUnavailable) for r in results)
    assert all(r.maybe_applied for r in results)


def test_every_request_of_the_client_holds_one_of_the_in_flight_slots(
    session: Any, adapter: ScriptedAdapter
) -> None:
    coalescer = WriteCoalescer(1, in_flight=1)
    client = _client(session, coalescer)
    free_while_sent: list[bool] = []

    def answer(_: Any) -> Canned:
        got = coalescer.requests.acquire(blocking=False)  # the request itself holds the only slot
        if got:
            coalescer.requests.release()
        free_while_sent.append(got)
        return Canned(200, {"Customer": {"Id": "9"}, "time": "t"})

    adapter.queue(answer, answer)
    client.read("Customer", "9")
    client.create("Customer", {"DisplayName": "alone"}, request_id="rid-alone")

    assert free_while_sent == [False, False]
    assert coalescer.requests.acquire(blocking=False)  # released afterwards
