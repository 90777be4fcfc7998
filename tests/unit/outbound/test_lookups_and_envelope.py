"""Pure parts of the outbound sync: QBO lookups, re-enqueue envelopes, firm settings, reference cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.platform_events import parse_platform_event
from qbsync.outbound.lookups import find_existing, lookup_statement
from qbsync.outbound.service import event_envelope
from qbsync.qbo.reference import ReferenceCache
from qbsync.repositories.firm_settings import FirmSettingsRepository, InvalidSettings

ROOT = Path(__file__).resolve().parents[3]


class FakeQbo:
    """Answers queries from canned rows and records them (stands in for the QBO API)."""

    realm_id = "9130"

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.rows = rows or []
        self.statements: list[str] = []

    def query(self, statement: str) -> list[dict[str, Any]]:
        self.statements.append(statement)
        return self.rows

    def query_all(self, statement: str) -> list[dict[str, Any]]:
        self.statements.append(statement)
        return []

    def batch(self, operations: list[Any], *, request_id: str) -> list[Any]:
        from qbsync.qbo.client import BatchItemResult

        self.statements.extend(op.query for op in operations)
        rows = {"info": [{"Country": "US"}], "prefs": [{}]}
        return [BatchItemResult(op.bid, op, rows=rows.get(op.bid, [])) for op in operations]

    def company_info(self) -> dict[str, Any]:
        return {"Country": "US"}

    def preferences(self) -> dict[str, Any]:
        return {}


def test_customer_lookup_escapes_the_name_and_matches_our_marker() -> None:
    payload = {"DisplayName": "O'Brien \\ Sons", "Notes": "qbsync:ClientAccount:acct-1"}
    assert lookup_statement("Customer", payload) == (
        "SELECT * FROM Customer WHERE DisplayName = 'O\\'Brien \\\\ Sons' MAXRESULTS 100"
    )
    ours = {"Id": "7", "Notes": "qbsync:ClientAccount:acct-1; imported"}
    other = {"Id": "8", "Notes": "qbsync:ClientAccount:acct-2"}
    assert find_existing("Customer", "client_account", "acct-1", payload)(FakeQbo([other, ours])) == ours  # type: ignore[arg-type]
    assert find_existing("Customer", "client_account", "acct-1", payload)(FakeQbo([other])) is None  # type: ignore[arg-type]


def test_invoice_lookup_by_doc_number_or_customer_and_date() -> None:
    assert lookup_statement("Invoice", {"DocNumber": "INV-1", "TxnDate": "2026-03-01"}) == (
        "SELECT * FROM Invoice WHERE DocNumber = 'INV-1' MAXRESULTS 100"
    )
    assert lookup_statement("Invoice", {"CustomerRef": {"value": "5"}, "TxnDate": "2026-03-01"}) == (
        "SELECT * FROM Invoice WHERE CustomerRef = '5' AND TxnDate = '2026-03-01' MAXRESULTS 100"
    )
    statement = lookup_statement(
        "Payment", {"CustomerRef": {"value": "5"}, "TxnDate": "2026-03-05", "TotalAmt": 605.5}
    )
    assert statement.endswith("TxnDate = '2026-03-05' AND TotalAmt = 605.5 MAXRESULTS 100")
    row = {"Id": "3", "PrivateNote": "qbsync:Payment:pay-1; processor stripe"}
    found = find_existing("CreditMemo", "payment", "pay-1", {"TxnDate": "2026-03-05"})(FakeQbo([row]))  # type: ignore[arg-type]
    assert found == row


def test_item_lookup_adopts_an_unmarked_item_of_the_same_name_only() -> None:
    payload = {"Name": "Bookkeeping"}
    unmarked = {"Id": "1", "Name": "Bookkeeping"}
    foreign = {"Id": "2", "Name": "Bookkeeping", "Description": "qbsync:Service:svc-9"}
    assert find_existing("Item", "service", "svc-1", payload)(FakeQbo([unmarked])) == unmarked  # type: ignore[arg-type]
    assert find_existing("Item", "service", "svc-1", payload)(FakeQbo([foreign])) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entity", "payload"),
    [("Customer", {}), ("Item", {"Name": ""}), ("Invoice", {"CustomerRef": {"value": "1"}}), ("Bill", {})],
)
def test_lookup_without_its_business_key_is_refused(entity: str, payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        lookup_statement(entity, payload)


def test_unknown_entity_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown platform entity type"):
        find_existing("Customer", "contact", "c-1", {"DisplayName": "x"})


@pytest.mark.parametrize("sample", sorted(p.name for p in (ROOT / "events" / "platform").glob("*.json")))
def test_reenqueued_envelope_parses_back_to_the_same_event(sample: str) -> None:
    event = parse_platform_event(json.loads((ROOT / "events" / "platform" / sample).read_text()))
    again = parse_platform_event(json.loads(json.dumps(event_envelope(event))))
    assert again == event
    assert event_envelope(event)["id"] == event_envelope(again)["id"]


class FakeTable:
    """In-memory stand-in for DynamoTable.get/put (the repository is the code under test)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, key: dict[str, str], **_: Any) -> dict[str, Any] | None:
        return self.items.get((key["pk"], key["sk"]))

    def put(self, item: dict[str, Any], **_: Any) -> None:
        self.items[(item["pk"], item["sk"])] = dict(item)


def test_firm_settings_defaults_seed_and_round_trip() -> None:
    table = FakeTable()
    repo = FirmSettingsRepository(table)  # type: ignore[arg-type]
    assert repo.get("firm-1") == FirmSyncSettings()
    seeded = repo.get("firm-1", seed={"sync_accounts": "all", "sync_start_date": "2026-01-01", "x": 1})
    assert seeded.sync_accounts == "all" and str(seeded.sync_start_date) == "2026-01-01"
    assert repo.get("firm-1", seed={"sync_accounts": "bogus"}) == FirmSyncSettings()

    chosen = FirmSyncSettings(sync_offline_payments=True, tax_map={"t1": {"tax_code_id": "2"}})
    repo.put("firm-1", chosen, now=1.0)
    assert ("FIRM#firm-1", "SETTINGS") in table.items
    assert repo.get("firm-1", seed={"sync_accounts": "all"}) == chosen

    table.items[("FIRM#firm-1", "SETTINGS")]["settings"] = json.dumps({"sync_accounts": "some"})
    with pytest.raises(InvalidSettings, match="sync_accounts") as err:
        repo.get("firm-1")
    assert "some" not in str(err.value)
    with pytest.raises(ValueError):
        repo.get("FIRM#1")


def test_reference_cache_reloads_only_after_its_ttl() -> None:
    now = [1000.0]
    cache = ReferenceCache(lambda: now[0], ttl_seconds=300)
    qbo = FakeQbo()
    first = cache.get(qbo)  # type: ignore[arg-type]
    loads = len(qbo.statements)
    assert loads > 0
    now[0] += 299
    assert cache.get(qbo) is first  # type: ignore[arg-type]
    assert len(qbo.statements) == loads
    now[0] += 2
    cache.get(qbo)  # type: ignore[arg-type]
    assert len(qbo.statements) == 2 * loads
