"""ErrorLogRepository on moto's DynamoDB (the ErrorLogTable from template.yaml): upsert, races, resolve,
skip, lists by category/status with paging, banner counts."""

from __future__ import annotations

import secrets
import threading

import boto3
import pytest
from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import BadRequest, Conflict, NotFound, QbsyncError
from qbsync.outbound.mapping import MappingError
from qbsync.qbo.faults import FaultError, ParsedFault, error_from_fault
from qbsync.repositories.error_log import ErrorEntry, ErrorLogRepository

T0 = 1_795_449_900.0
REALM = "9130351234567890"
CLIENT_NAME = "Rivera & Sons LLC"


def qbo_fault(code: str, *, detail: str | None = None, entity: str = "Invoice") -> QbsyncError:
    parsed = ParsedFault("ValidationFault", (FaultError(code, "QuickBooks said no", detail, None),))
    return error_from_fault(parsed, status=400, realm_id=REALM, entity=entity, is_write=True)


DUPLICATE_NUMBER = qbo_fault(
    "6140", detail=f"Duplicate Document Number Error : DocNumber=1001 for {CLIENT_NAME} TxnId=6575"
)
CLOSED_BOOKS = qbo_fault("6200")


@pytest.fixture
def table(provisioned, aws_clean) -> DynamoTable:
    client = boto3.client("dynamodb", endpoint_url=provisioned.endpoint_url, region_name=provisioned.region)
    return DynamoTable(provisioned.ref("ErrorLogTable"), client=client)


@pytest.fixture
def repo(table) -> ErrorLogRepository:
    return ErrorLogRepository(table)


@pytest.fixture
def firm() -> str:
    return f"f_{secrets.token_hex(4)}"


def record(
    repo, firm, platform_id="inv_1", error=DUPLICATE_NUMBER, now=T0, entity_type="invoice"
) -> ErrorEntry:
    return repo.record(
        firm_id=firm, realm_id=REALM, entity_type=entity_type, platform_id=platform_id, error=error, now=now
    )


def test_first_record_creates_an_open_entry(repo, table, firm):
    entry = record(repo, firm)
    assert entry.is_new and entry.attempts == 1
    assert (entry.status, entry.category, entry.code, entry.qbo_code) == (
        "open",
        "Invoices",
        "duplicate_document_number",
        "6140",
    )
    assert entry.first_seen == entry.last_seen == T0
    assert entry.history == [{"at": T0, "action": "created", "code": "duplicate_document_number"}]
    assert "number" in entry.fix
    assert CLIENT_NAME not in entry.message and "6575" not in entry.message  # qbo_detail never copied
    stored = repo.get(firm, entry.error_id)
    assert stored is not None and stored.error_id == entry.error_id and not stored.is_new
    raw = table.get({"pk": f"FIRM#{firm}", "sk": f"ERR#{entry.error_id}"})
    assert raw["gsi1pk"] == f"FIRM#{firm}#CAT#invoices"
    assert raw["gsi1sk"].startswith("open#2026-")
    assert raw["gsi2pk"] == f"FIRM#{firm}#STATUS#open"
    assert "ttl" not in raw


def test_repeat_counts_an_attempt_and_updates_the_explanation(repo, firm):
    first = record(repo, firm)
    again = record(repo, firm, now=T0 + 60)
    assert again.error_id == first.error_id
    assert not again.is_new and again.attempts == 2
    assert (again.first_seen, again.last_seen) == (T0, T0 + 60)
    assert [h["action"] for h in again.history] == ["created"]  # same cause: no history growth

    changed = record(repo, firm, error=CLOSED_BOOKS, now=T0 + 120)
    assert changed.error_id == first.error_id and changed.attempts == 3
    assert (changed.code, changed.qbo_code) == ("books_closed", "6200")
    assert "closing date" in changed.fix
    assert changed.history[-1] == {"at": T0 + 120, "action": "code_changed", "code": "books_closed"}

    mapping = MappingError(
        "Taxes", "tax_rate_unmapped", "Map tax rate tr_1 in Tax mapping.", entity="Invoice"
    )
    taxes = record(repo, firm, error=mapping, now=T0 + 180)
    assert (taxes.category, taxes.code, taxes.qbo_code) == ("Taxes", "tax_rate_unmapped", None)
    assert taxes.message == "Map tax rate tr_1 in Tax mapping."
    assert repo.counts(firm)["Taxes"] == 1 and repo.counts(firm)["Invoices"] == 0


def test_concurrent_records_of_the_same_error_make_one_entry(repo, firm):
    workers = 6
    barrier = threading.Barrier(workers)
    results: list[ErrorEntry] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            barrier.wait(timeout=30)
            entry = record(repo, firm, platform_id="inv_race")
            with lock:
                results.append(entry)
        except BaseException as exc:
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures
    assert len(results) == workers
    assert sum(r.is_new for r in results) == 1  # exactly one notification
    assert len({r.error_id for r in results}) == 1
    assert sorted(r.attempts for r in results) == list(range(1, workers + 1))
    entries, _ = repo.list(firm)
    assert [(e.platform_id, e.attempts) for e in entries] == [("inv_race", workers)]


def test_two_threads_at_once_give_one_open_entry_with_two_attempts(repo, firm):
    barrier = threading.Barrier(2)
    results: list[ErrorEntry] = []

    def work() -> None:
        barrier.wait(timeout=30)
        results.append(record(repo, firm, platform_id="inv_pair"))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(r.is_new for r in results) == [False, True]
    entries, _ = repo.list(firm)
    assert len(entries) == 1 and entries[0].attempts == 2


def test_resolve_closes_and_the_next_failure_opens_a_new_entry(repo, table, firm):
    first = record(repo, firm)
    repo.resolve(firm_id=firm, entity_type="invoice", platform_id="inv_1", now=T0 + 300)
    closed = repo.get(firm, first.error_id)
    assert closed is not None and closed.status == "resolved"
    assert closed.history[-1] == {"at": T0 + 300, "action": "resolved"}
    raw = table.get({"pk": f"FIRM#{firm}", "sk": f"ERR#{first.error_id}"})
    assert raw["ttl"] == int(T0 + 300) + 180 * 24 * 3600
    assert raw["gsi1sk"].startswith("resolved#")
    assert repo.list(firm)[0] == []
    assert [e.error_id for e in repo.list(firm, status="resolved")[0]] == [first.error_id]
    assert repo.counts(firm)["Invoices"] == 0

    # resolving again, or a record that never failed, is a no-op
    repo.resolve(firm_id=firm, entity_type="invoice", platform_id="inv_1", now=T0 + 301)
    repo.resolve(firm_id=firm, entity_type="invoice", platform_id="never_failed", now=T0 + 301)
    assert repo.get(firm, first.error_id).history[-1]["at"] == T0 + 300

    again = record(repo, firm, now=T0 + 400)
    assert again.is_new and again.attempts == 1 and again.error_id != first.error_id
    assert repo.get(firm, first.error_id).status == "resolved"


def test_skip_keeps_the_cause_quiet_but_a_new_cause_notifies(repo, firm):
    first = record(repo, firm)
    skipped = repo.skip(firm, first.error_id, now=T0 + 10, by="user_1")
    assert skipped.status == "skipped"
    assert skipped.history[-1] == {"at": T0 + 10, "action": "skipped", "by": "user_1"}
    with pytest.raises(Conflict):
        repo.skip(firm, first.error_id, now=T0 + 11)
    with pytest.raises(NotFound):
        repo.skip(firm, "nope", now=T0 + 11)

    same = record(repo, firm, now=T0 + 20)
    assert (same.error_id, same.status, same.is_new, same.attempts) == (first.error_id, "skipped", False, 2)
    assert repo.counts(firm)["Invoices"] == 0

    other = record(repo, firm, error=CLOSED_BOOKS, now=T0 + 30)
    assert other.is_new and other.status == "open" and other.error_id != first.error_id
    assert repo.get(firm, first.error_id).status == "skipped"
    assert repo.counts(firm)["Invoices"] == 1


def test_list_by_category_and_status_with_paging_and_counts(repo, firm):
    for i in range(5):
        record(repo, firm, platform_id=f"inv_{i}", now=T0 + i)
    for i in range(2):
        record(
            repo,
            firm,
            platform_id=f"pay_{i}",
            entity_type="payment",
            error=qbo_fault("6200", entity="Payment"),
            now=T0 + 10 + i,
        )
    record(
        repo,
        firm,
        platform_id="svc_1",
        entity_type="service",
        error=qbo_fault("6240", entity="Item"),
        now=T0 + 20,
    )
    repo.resolve(firm_id=firm, entity_type="invoice", platform_id="inv_4", now=T0 + 30)
    other_firm = f"f_{secrets.token_hex(4)}"
    record(repo, other_firm, platform_id="inv_x")

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        entries, cursor = repo.list(firm, category="Invoices", limit=2, cursor=cursor)
        pages += 1
        seen += [e.platform_id for e in entries]
        assert all(e.category == "Invoices" and e.status == "open" for e in entries)
        if cursor is None:
            break
    assert seen == ["inv_3", "inv_2", "inv_1", "inv_0"]  # newest first, no repeats
    assert pages >= 2

    all_open: list[str] = []
    cursor = None
    while True:
        entries, cursor = repo.list(firm, limit=3, cursor=cursor)
        all_open += [e.platform_id for e in entries]
        if cursor is None:
            break
    assert all_open == ["svc_1", "pay_1", "pay_0", "inv_3", "inv_2", "inv_1", "inv_0"]

    assert [e.platform_id for e in repo.list(firm, category="Invoices", status="resolved")[0]] == ["inv_4"]
    assert repo.list(firm, category="Payments")[0][0].code == "books_closed"

    counts = repo.counts(firm)
    assert counts == {
        "Accounts": 0,
        "Invoices": 4,
        "Payments": 2,
        "Refunds": 0,
        "Expenses": 0,
        "Services": 1,
        "Contacts": 0,
        "Taxes": 0,
        "Connection": 0,
    }
    assert repo.counts(other_firm)["Invoices"] == 1
    assert repo.get(other_firm, repo.list(firm)[0][0].error_id) is None  # another firm's id is not found


def test_list_rejects_bad_arguments_and_foreign_cursors(repo, firm):
    for i in range(3):
        record(repo, firm, platform_id=f"inv_{i}", now=T0 + i)
    _, cursor = repo.list(firm, limit=1)
    assert cursor is not None
    with pytest.raises(BadRequest):
        repo.list("another_firm", limit=1, cursor=cursor)
    with pytest.raises(BadRequest):
        repo.list(firm, category="Invoices", limit=1, cursor=cursor)  # cursor of another list
    with pytest.raises(BadRequest):
        repo.list(firm, cursor="not-a-cursor!!")
    with pytest.raises(BadRequest):
        repo.list(firm, category="Invoice")
    with pytest.raises(BadRequest):
        repo.list(firm, status="closed")
    with pytest.raises(BadRequest):
        repo.list(firm, limit=0)
    with pytest.raises(BadRequest):
        record(repo, "", platform_id="x")
    with pytest.raises(BadRequest):
        record(repo, firm, entity_type="in#voice")


def test_note_action_appends_to_history_without_changing_status(repo, firm):
    entry = record(repo, firm)
    noted = repo.note_action(firm, entry.error_id, action="resync requested", by="user_1", now=T0 + 5)
    assert noted.status == "open" and noted.attempts == 1
    assert noted.history[-1] == {"at": T0 + 5, "action": "resync requested", "by": "user_1"}
    mapped = repo.note_action(
        firm, entry.error_id, action="customer mapped", by=None, now=T0 + 6, detail="qbo_customer 58"
    )
    assert mapped.history[-1] == {"at": T0 + 6, "action": "customer mapped", "detail": "qbo_customer 58"}
    assert [h["action"] for h in repo.get(firm, entry.error_id).history] == [
        "created",
        "resync requested",
        "customer mapped",
    ]
    with pytest.raises(NotFound):
        repo.note_action(firm, "nope-1", action="resync requested", by="user_1", now=T0)
    with pytest.raises(NotFound):  # another firm's error id is not found
        repo.note_action("another_firm", entry.error_id, action="resync requested", by="u", now=T0)
    with pytest.raises(BadRequest):
        repo.note_action(firm, entry.error_id, action="", by="u", now=T0)
    assert repo.get("another_firm", entry.error_id) is None  # no item was created by the failed update
