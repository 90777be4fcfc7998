"""The demo's sample firm: valid platform events, the issue's minimums, determinism, true expectations,
and deliberate errors that really fail the mapping (or QBO) with the expected reason."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
from qbsync.catalog import explain
from qbsync.errors import BadRequest, QboValidationError
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.platform_events import (
    ClientAccount,
    Invoice,
    Payment,
    ProcessingFee,
    Refund,
    Service,
    parse_platform_event,
)
from qbsync.outbound import mapping
from qbsync.outbound.mapping import MappingError, Resolved

from local.sample_firm import Case, SampleFirmError, generate
from tests.unit.outbound.support import make_ref

TODAY = date(2026, 11, 23)


@pytest.fixture(scope="module")
def sample():
    return generate("firm-harbor-cpa", seed=7, today=TODAY)


@pytest.fixture(scope="module")
def parsed(sample):
    return [parse_platform_event(e) for e in sample.events]


def test_every_event_is_a_valid_platform_event_of_the_firm(sample, parsed):
    assert len(parsed) == len(sample.events)
    assert {p.firm_id for p in parsed} == {"firm-harbor-cpa"}
    assert len({p.event_id for p in parsed}) == len(parsed)
    assert {e["source"] for e in sample.events} == {"platform"}
    # every record is sent exactly once
    keys = Counter((p.ENTITY, p.record_id) for p in parsed)
    assert max(keys.values()) == 1
    assert sum(len(v) for v in sample.records.values()) == len(parsed)


def test_counts_meet_the_issue_minimums(sample, parsed):
    by_type = Counter(type(p.data).__name__ for p in parsed)
    assert by_type["ClientAccount"] >= 50
    assert by_type["Service"] == 21  # the issue's 20 and the negative-rate one
    assert by_type["Invoice"] >= 300
    payments = [p.data for p in parsed if isinstance(p.data, Payment)]
    assert any(len(p.allocations) >= 2 for p in payments)  # split
    assert any(p.method == "credit_balance" for p in payments)  # credit balance
    invoices = {p.data.id: p.data for p in parsed if isinstance(p.data, Invoice)}
    assert any(
        p.allocations[0].amount < invoices[p.allocations[0].invoice_id].total for p in payments
    )  # partial
    assert by_type["Refund"] >= 3 and by_type["ProcessingFee"] >= 10
    names = [p.data.name for p in parsed if isinstance(p.data, ClientAccount)]
    assert len(set(names)) == len(names)  # unique: the deliberate duplicate is of a hand-entered QBO vendor
    assert set(sample.qbo_vendors_before) <= set(names)
    assert all(1 <= len(i.line_items) <= 4 for i in invoices.values())
    dates = [i.issue_date for i in invoices.values()]
    assert min(dates) >= date(2026, 6, 1) and max(dates) <= TODAY


def test_one_of_each_issue_11_case_and_a_malformed_event_the_contract_refuses(sample):
    [malformed] = sample.malformed_events
    with pytest.raises(BadRequest, match=r"data\.amount"):
        parse_platform_event(malformed)
    assert malformed["detail"]["event_id"] not in {e["detail"]["event_id"] for e in sample.events}
    assert sample.expected_dead_letters == {malformed["detail"]["event_id"]}
    pay_id = malformed["detail"]["data"]["id"]
    assert ("Payment", pay_id) not in sample.record_keys  # never a record: nothing waits on it
    service = sample.error("service_rate_negative").platform_id
    assert Decimal(sample.record("Service", service)["rate"]) < 0
    quiet, draft = sample.records["ClientAccount"][0], sample.records["Invoice"][0]
    assert (draft["account_id"], draft["status"]) == (quiet["id"], "draft")  # its only invoice
    assert [i["id"] for i in sample.records["Invoice"] if i["account_id"] == quiet["id"]] == [draft["id"]]
    assert [(c.item, c.entity_type, c.platform_id) for c in sample.cases if c.item != 2] == [
        (1, "Service", service),
        (3, "Payment", pay_id),
        (4, "ClientAccount", quiet["id"]),
        (4, "Invoice", draft["id"]),
    ]
    assert {(c.entity_type, c.platform_id) for c in sample.cases if c.item == 2} == sample.expected_held
    assert Case(3, "Payment", pay_id, malformed["detail"]["event_id"]) in sample.cases
    # the draft is neither synced nor held: skipped (not synced) with the account that has only it
    assert not {("ClientAccount", quiet["id"]), ("Invoice", draft["id"])} & (
        sample.expected_synced | sample.expected_held
    )
    # what each held record is behind: its failed account or service, and the invoice of the payment
    dup, colon = (
        sample.error("duplicate_name").platform_id,
        sample.error("name_invalid_characters").platform_id,
    )
    colon_invoice, dup_invoice, behind_service = (i["id"] for i in sample.records["Invoice"][-3:])
    assert {c.platform_id: c.behind for c in sample.cases if c.item == 2} == {
        colon_invoice: (("ClientAccount", colon),),
        dup_invoice: (("ClientAccount", dup),),
        behind_service: (("Service", service),),
        sample.cases[4].platform_id: (("ClientAccount", dup), ("Invoice", dup_invoice)),
    }


def test_generation_is_deterministic_per_seed():
    a = generate("firm-a", seed=3, today=TODAY)
    b = generate("firm-a", seed=3, today=TODAY)
    c = generate("firm-a", seed=4, today=TODAY)
    assert a.events == b.events
    assert a.events != c.events
    with pytest.raises(SampleFirmError):
        generate("", today=TODAY)
    with pytest.raises(SampleFirmError):
        generate("firm-a", n_accounts=3, today=TODAY)
    with pytest.raises(SampleFirmError):
        generate("firm-a", n_accounts=20, n_invoices=21, today=TODAY)


def test_a_scaled_down_firm_keeps_the_deliberate_errors():
    small = generate("firm-a", n_accounts=8, n_invoices=30, today=TODAY)
    parsed = [parse_platform_event(e) for e in small.events]
    # and the one billing the bad service, and the quiet client's draft (and that client)
    assert sum(isinstance(p.data, Invoice) for p in parsed) == 32
    assert sum(isinstance(p.data, ClientAccount) for p in parsed) == 9
    assert len(small.deliberate_errors) == 4 and len(small.malformed_events) == 1
    assert small.expected_qbo["Customer"] == 6 and small.expected_qbo["Invoice"] == 27
    assert small.expected_qbo["Item"] == 20


def test_expected_totals_and_counts_follow_the_records(sample, parsed):
    invoices = [p.data for p in parsed if isinstance(p.data, Invoice)]
    assert sample.platform_invoice_total == sum((i.total for i in invoices), Decimal("0.00"))
    failing = {e.platform_id for e in sample.deliberate_errors} | {k[1] for k in sample.expected_held}
    failing |= {c.platform_id for c in sample.cases if c.item == 4}  # the draft (and its client)
    landed = [i for i in invoices if i.id not in failing]
    assert len(landed) == len(invoices) - 5
    assert sample.expected_invoice_total == sum((i.total for i in landed), Decimal("0.00"))
    assert sample.expected_qbo["Invoice"] == len(landed)
    records = [p.data for p in parsed]
    qbo = Counter(mapping.qbo_entity_for(r) for r in records)
    assert sample.expected_qbo["Customer"] == qbo["Customer"] - 3  # the two bad ones and the quiet one
    assert sample.expected_qbo["Payment"] == qbo["Payment"] - 1  # the payment waiting on a blocked invoice
    assert sample.expected_qbo["Item"] == qbo["Item"] - 1  # the negative-rate service fails
    for entity in ("CreditMemo", "RefundReceipt", "Purchase"):
        assert sample.expected_qbo[entity] == qbo[entity], entity
    # every record announces a final status but the quiet client and its draft (skipped, not waited for);
    # the two bad accounts' invoices, the payment of one and the invoice billing the failed service are
    # held: skipped naming the failed record they wait on
    assert sample.expected_terminal == len(records) - 2
    dup_account = sample.error("duplicate_name").platform_id
    waiting = [p for p in records if isinstance(p, Payment) and p.account_id == dup_account]
    assert [a.invoice_id for p in waiting for a in p.allocations] == [invoices[-2].id]
    bad_service = sample.error("service_rate_negative").platform_id
    [behind] = [i for i in invoices if any(line.service_id == bad_service for line in i.line_items)]
    assert behind.account_id not in {e.platform_id for e in sample.deliberate_errors}  # a good account
    assert sample.waiting_on("Invoice", behind.id) == [
        ("ClientAccount", behind.account_id),
        ("Service", bad_service),
    ]
    assert sample.expected_held == {("Invoice", i.id) for i in invoices[-3:]} | {("Payment", waiting[0].id)}
    assert behind.id == invoices[-1].id
    paid_landing = [
        p
        for p in records
        if isinstance(p, Payment) and p.method != "credit_balance" and p.id != waiting[0].id
    ]
    assert sample.expected_totals()["Payment"] == sum((p.amount for p in paid_landing), Decimal("0.00"))
    # no payment overpays an invoice
    paid: Counter[str] = Counter()
    for p in records:
        if isinstance(p, Payment):
            for a in p.allocations:
                paid[a.invoice_id] += a.amount
    totals = {i.id: i.total for i in invoices}
    assert all(amount <= totals[iid] for iid, amount in paid.items())


def test_after_fixes_lands_the_fixed_records_and_what_waited_on_them(sample, parsed):
    invoices = [p.data for p in parsed if isinstance(p.data, Invoice)]
    taxed = sample.error("tax_rate_unmapped").platform_id
    colon = sample.error("name_invalid_characters").platform_id
    dup = sample.error("duplicate_name").platform_id
    service = sample.error("service_rate_negative").platform_id
    colon_invoice, dup_invoice, behind_service = invoices[-3:]
    # the account mapped alone: its invoice and payment land, not what waits on the failed service
    only_mapped = sample.after_fixes(mapped=[dup])
    assert ("Invoice", behind_service.id) in only_mapped.expected_held
    after = sample.after_fixes(mapped=[dup], fixed=[taxed, service], skipped=[colon])
    # mapped: the account uses the bookkeeper's customer (no new one); its invoice and payment land; the
    # corrected service lands and so does the invoice that bills it
    assert after.expected_qbo["Customer"] == sample.expected_qbo["Customer"]
    assert after.expected_qbo["Item"] == sample.expected_qbo["Item"] + 1
    assert after.expected_qbo["Invoice"] == sample.expected_qbo["Invoice"] + 3
    assert after.expected_qbo["Payment"] == sample.expected_qbo["Payment"] + 1
    assert after.expected_held == {("Invoice", colon_invoice.id)}  # the skipped account's invoice
    assert after.expected_failed == {("ClientAccount", colon)}
    assert after.deliberate_errors == () and [e.platform_id for e in after.skipped_errors] == [colon]
    totals = {i.id: i.total for i in invoices}
    assert (
        after.expected_invoice_total
        == sample.expected_invoice_total + totals[taxed] + totals[dup_invoice.id] + totals[behind_service.id]
    )
    # the taxed invoice and the one behind the service are unpaid; the vendor-named account's invoice is
    # paid in full by the waiting payment
    assert after.expected_invoice_balance == (
        sample.expected_invoice_balance + totals[taxed] + totals[behind_service.id]
    )
    assert after.cases == sample.cases and after.malformed_events == sample.malformed_events
    assert after.expected_totals()["Invoice"] == after.expected_invoice_total
    assert sample.qbo_customers_before == (f"{sample.qbo_vendors_before[0]} (client)",)
    # skipping everything lands nothing new; naming an error twice or an unknown id is refused
    assert sample.after_fixes(skipped=[taxed, colon, dup, service]).expected_qbo == sample.expected_qbo
    with pytest.raises(SampleFirmError):
        sample.after_fixes(mapped=[dup], skipped=[dup])
    with pytest.raises(SampleFirmError):
        sample.after_fixes(fixed=["inv-nope"])
    with pytest.raises(SampleFirmError):
        sample.after_fixes(mapped=[taxed])


def _resolved(record, services) -> Resolved:
    return Resolved(
        customer_id="58",
        item_ids={s: f"item-{s}" for s in services},
        invoice_ids={},
        payment_id="p-1",
        payment_deposit_account_id="4",
        payment_method_id="3",
    )


def test_deliberate_errors_fail_and_everything_else_maps(sample, parsed):
    ref = make_ref()
    settings = FirmSyncSettings()
    services = [p.data.id for p in parsed if isinstance(p.data, Service)]
    deliberate = {e.platform_id: e for e in sample.deliberate_errors}
    assert {e.reason_code for e in sample.deliberate_errors} == {
        "tax_rate_unmapped",
        "name_invalid_characters",
        "duplicate_name",
        "service_rate_negative",
    }
    accounts: dict[str, str] = {}
    for p in parsed:
        record = p.data
        resolved = _resolved(record, services)
        if isinstance(record, Payment):
            resolved.invoice_ids = {a.invoice_id: f"q-{a.invoice_id}" for a in record.allocations}
        if isinstance(record, Invoice) and record.status == "draft":
            continue  # the quiet client's draft: skipped by the sync, never mapped
        wanted = deliberate.get(record.id)
        if wanted is not None and wanted.reason_code != "duplicate_name":
            with pytest.raises(MappingError) as caught:
                _payload(record, resolved, ref, settings)
            assert caught.value.reason_code == wanted.reason_code
            assert caught.value.category == wanted.category
            continue
        body = _payload(record, resolved, ref, settings)
        if isinstance(record, ClientAccount):
            accounts[record.id] = body["DisplayName"]
    # the duplicate maps fine; QuickBooks refuses its name (fault 6240) because the firm entered a
    # vendor by that name by hand (names are unique across customers and vendors), which the catalogue
    # explains. No other account has the name, so the error lands on this record whatever order the
    # workers take.
    dup = next(e for e in sample.deliberate_errors if e.reason_code == "duplicate_name")
    assert accounts[dup.platform_id] in sample.qbo_vendors_before
    assert [aid for aid, name in accounts.items() if name == accounts[dup.platform_id]] == [dup.platform_id]
    assert len(set(accounts.values())) == len(accounts)
    fault = QboValidationError("Duplicate Name Exists Error", qbo_code="6240")
    assert explain(fault, entity_type="client_account").code == "duplicate_name"


def _payload(record, resolved, ref, settings):
    if isinstance(record, ClientAccount):
        return mapping.customer_payload(record, ref, settings)
    if isinstance(record, Service):
        return mapping.item_payload(record, ref, settings)
    if isinstance(record, Invoice):
        return mapping.invoice_payload(record, resolved, ref, settings)
    if isinstance(record, Payment):
        if record.credit_source:
            return mapping.credit_memo_payload(record, resolved, ref, settings)
        return mapping.payment_payload(record, resolved, ref, settings)
    if isinstance(record, Refund):
        return mapping.refund_receipt_payload(record, resolved, ref, settings)
    assert isinstance(record, ProcessingFee)
    return mapping.purchase_payload(record, resolved, ref, settings)


def _named(sample, key):
    """How a skip reason names the first unsynced prerequisite of a held record ("client account a-1")."""
    from local.sample_firm import API_TYPE

    t, p = next(w for w in sample.waiting_on(*key) if w not in sample.expected_synced)
    return f"{API_TYPE[t].replace('_', ' ')} {p}"


def _quiet_rows(sample):
    """The item-4 records as the admin API shows them: the draft and the client that has only it."""
    out = {}
    for c in (c for c in sample.cases if c.item == 4):
        reason = (
            "no_activity: no invoices or payments that sync: 1 draft invoice"
            if c.entity_type == "ClientAccount"
            else "draft invoices are not synced"
        )
        out[(c.entity_type, c.platform_id)] = {"status": "skipped", "skip_reason": reason}
    return out


def _report(sample, **over):
    from local.sample_firm import SampleReport

    errors = [
        {
            "entity_type": e.entity_type,
            "platform_id": e.platform_id,
            "code": e.reason_code,
            "category": e.category,
            "title": f"title {e.reason_code}",
            "explanation": f"explanation {e.reason_code}",
            "fix": f"fix {e.reason_code}",
        }
        for e in sample.deliberate_errors
    ]
    fields = {
        "sample": sample,
        "realm_id": "9341",
        "in_qbo": dict(sample.expected_qbo),
        "duplicates": {},
        "qbo_invoice_total": sample.expected_invoice_total,
        "qbo_invoice_balance": sample.expected_invoice_balance,
        "final_status": {k: "synced" for k in sample.expected_synced},
        "open_errors": errors,
        "seconds_sending": 1.0,
        "seconds_total": 2.0,
        "timed_out": False,
        "qbo_totals": sample.expected_totals(),
        "records_seen": {
            key: {
                "status": "skipped",
                "skip_reason": f"waiting_on_prerequisite: waiting on {_named(sample, key)} failed: fix it",
            }
            for key in sample.expected_held
        }
        | _quiet_rows(sample),
        "dead_letters": [
            {"event_id": e, "detail_type": "Payment Created", "problem": "data.amount: not two decimals"}
            for e in sample.expected_dead_letters
        ],
        "dlq_receive_counts": dict.fromkeys(sample.expected_dead_letters, "1"),
    }
    fields.update(over)
    return SampleReport(**fields)


def test_report_is_ok_only_when_everything_landed_once_and_only_the_deliberate_errors_are_open(sample):
    good = _report(sample)
    assert good.ok
    text = good.render()
    assert "RESULT: ok" in text and "explanation tax_rate_unmapped" in text and "fix duplicate_name" in text
    assert f"{sample.expected_invoice_total}   match" in text
    off_by_a_cent = _report(sample, qbo_invoice_total=sample.expected_invoice_total - Decimal("0.01"))
    assert not off_by_a_cent.ok and "MISMATCH" in off_by_a_cent.render()
    assert not _report(sample, duplicates={"Invoice": 1}).ok
    balance_off = _report(sample, qbo_invoice_balance=sample.expected_invoice_balance + Decimal("0.01"))
    assert not balance_off.ok and "MISMATCH" in balance_off.render()
    fees_off = {
        **sample.expected_totals(),
        "Purchase": sample.expected_totals()["Purchase"] - Decimal("0.01"),
    }
    assert not _report(sample, qbo_totals=fees_off).ok
    assert "<-- MISMATCH" in _report(sample, qbo_totals=fees_off).render()
    assert not _report(sample, in_qbo={**sample.expected_qbo, "Payment": 0}).ok
    extra = {"entity_type": "invoice", "platform_id": "inv-1", "code": "books_closed", "category": "Invoices"}
    unexpected = _report(sample, open_errors=[*good.open_errors, extra])
    assert not unexpected.ok and "unexpected: invoice inv-1" in unexpected.render()
    assert not _report(sample, open_errors=good.open_errors[:2]).ok
    # after the fixes: no open error is expected, and a skipped one is shown as skipped
    colon = sample.error("name_invalid_characters").platform_id
    after = sample.after_fixes(skipped=[e.platform_id for e in sample.deliberate_errors])
    fixed = _report(after, open_errors=[], final_status={k: "synced" for k in after.expected_synced})
    assert fixed.ok and "Error log: 0 open (deliberate: 0)" in fixed.render("checked")
    assert f"skipped by the firm: ClientAccount {colon}" in fixed.render()
    assert not _report(after, open_errors=good.open_errors[:1]).ok


def test_the_report_says_where_each_case_ended_and_is_not_ok_when_one_did_not(sample):
    good = _report(sample)
    text = good.render()
    assert "Where each case ended (issue 11)" in text
    service = sample.error("service_rate_negative").platform_id
    [malformed] = sample.malformed_events
    assert f"Service {service}: " in text and "(service_rate_negative)" in text
    held = sorted(sample.expected_held)
    assert all(f"{t} {p}: skipped - waiting_on_prerequisite: " in text for t, p in held)
    event_id = malformed["detail"]["event_id"]
    assert f"(event {event_id}): in OutboundDLQ after 1 receive(s), not a record" in text
    assert good.case_problems == []
    quiet = next(c for c in sample.cases if c.item == 4)
    assert (
        f"ClientAccount {quiet.platform_id}: skipped - no_activity: no invoices or payments that sync: "
        "1 draft" in text
    )
    # the quiet client skipped without saying why: not ok
    mute = {
        **good.records_seen,
        ("ClientAccount", quiet.platform_id): {"status": "skipped", "skip_reason": "no_activity"},
    }
    assert not _report(sample, records_seen=mute).ok
    # a held record left blocked, or skipped without naming what it waits on: not ok
    blocked = {**good.records_seen, held[0]: {"status": "blocked", "skip_reason": None}}
    assert not _report(sample, records_seen=blocked).ok
    unnamed = {
        **good.records_seen,
        held[0]: {"status": "skipped", "skip_reason": "waiting_on_prerequisite: ?"},
    }
    assert not _report(sample, records_seen=unnamed).ok
    # the malformed event not in the firm's dead letters, or parked only after five receives: not ok
    assert not _report(sample, dead_letters=[]).ok
    retried = _report(sample, dlq_receive_counts={event_id: "5"})
    assert not retried.ok and f"{event_id} in OutboundDLQ after 5 receives" in retried.case_problems
    # after the fixes: the corrected service and what waited on it are synced, and the report says so
    after = sample.after_fixes(
        mapped=[sample.error("duplicate_name").platform_id],
        fixed=[service, sample.error("tax_rate_unmapped").platform_id],
        skipped=[sample.error("name_invalid_characters").platform_id],
    )
    seen = {k: {"status": "synced", "skip_reason": None} for k in sample.expected_held - after.expected_held}
    seen[("Service", service)] = {"status": "synced", "skip_reason": None}
    for key in after.expected_held:
        seen[key] = good.records_seen[key]
    seen |= _quiet_rows(sample)
    fixed = _report(after, open_errors=[], records_seen=seen)
    assert fixed.ok, fixed.case_problems
    text = fixed.render()
    assert f"Service {service}: synced - the platform corrected it; its error resolved" in text
    behind = sample.records["Invoice"][-1]["id"]
    assert f"Invoice {behind}: synced - came back by itself once Service {service} synced" in text


def test_final_status_prefers_synced_over_an_earlier_skip():
    from local.sample_firm import _final_status

    statuses = Counter(
        {
            ("ClientAccount", "a1", "skipped"): 1,
            ("ClientAccount", "a1", "synced"): 1,
            ("Invoice", "i1", "failed"): 2,
            ("Invoice", "i2", "syncing"): 1,
        }
    )
    assert _final_status(statuses) == {("ClientAccount", "a1"): "synced", ("Invoice", "i1"): "failed"}
