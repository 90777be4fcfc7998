"""E.5 notifications through the real entity-sync handler: a NEW error publishes "Sync Error Raised" for the
owner and admins; a skipped error that recurs does not (is_new False); a different error of the same record
opens a new entry and does (E.3)."""

from __future__ import annotations

from typing import Any

from qbsync.models.record_key import RecordKey

from tests.integration.entity_sync.conftest import (
    SyncStack,
    new_firm,
    platform_event,
    stack,
)

__all__ = ["stack"]  # the entity-sync fixture, used here


def invoice(firm: str, version: int) -> dict[str, Any]:
    event = platform_event("invoice_sent", firm)  # its first line carries the unmapped tax rate "tax-me"
    event["detail"]["version"] = version
    return event


def raised(stack: SyncStack) -> list[dict[str, Any]]:
    return [d for t, d in stack.published() if t == "Sync Error Raised" and d["platform_id"] == "inv-400"]


def test_new_errors_notify_owner_and_admins_skipped_ones_stay_quiet(stack: SyncStack) -> None:
    firm = new_firm()
    stack.connect(firm)
    stack.set_settings(firm, sync_accounts="all")
    prerequisites = [platform_event("client_account_created", firm), platform_event("service_created", firm)]
    assert stack.deliver(*prerequisites) == {"batchItemFailures": []}
    stack.published()

    assert stack.deliver(invoice(firm, 2)) == {"batchItemFailures": []}
    [first] = raised(stack)
    assert first["notify_roles"] == ["owner", "admin"]
    entry = stack.errors.get(firm, first["error_id"])
    assert entry is not None and entry.code == "tax_rate_unmapped" and entry.status == "open"

    # the admin skips it: the same failure again counts an attempt and notifies nobody
    stack.errors.skip(firm, entry.error_id, now=entry.last_seen + 1, by="user-1")
    assert stack.deliver(invoice(firm, 3)) == {"batchItemFailures": []}
    assert raised(stack) == []
    again = stack.errors.get(firm, entry.error_id)
    assert again is not None and (again.status, again.attempts) == ("skipped", 2)
    record = stack.records.get(RecordKey(firm, stack.realm_id, "invoice", "inv-400"))
    assert record is not None and record.status == "failed"

    # a different error of the same record is a new entry and notifies
    stack.set_settings(firm, sync_accounts="all", tax_map={"tax-me": {"tax_code_id": "9999"}})
    assert stack.deliver(invoice(firm, 4)) == {"batchItemFailures": []}
    [second] = raised(stack)
    assert second["error_id"] != entry.error_id and second["notify_roles"] == ["owner", "admin"]
    new_entry = stack.errors.get(firm, second["error_id"])
    assert new_entry is not None and new_entry.code == "tax_code_invalid" and new_entry.status == "open"
    assert stack.errors.get(firm, entry.error_id).status == "skipped"  # the skipped one stays skipped
