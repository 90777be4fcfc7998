"""Event contract: committed schemas and samples match the models; parsing rejects bad events clearly."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from qbsync.errors import BadRequest
from qbsync.models.platform_events import (
    PLATFORM_EVENT_TYPES,
    InvoiceCreated,
    PaymentCreated,
    parse_platform_event,
)
from qbsync.models.qbsync_events import QBSYNC_EVENT_TYPES, ConnectionChanged, InvoicePaid

from scripts import gen_event_schemas as gen

ROOT = Path(__file__).resolve().parents[3]


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _samples(source: str) -> list[Path]:
    return sorted((ROOT / "events" / source).glob("*.json"))


def _schema(source: str, sample: Path) -> dict:
    return _load(ROOT / "docs" / "events" / source / f"{sample.stem}.schema.json")


def _validator(source: str, sample: Path) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema(source, sample), format_checker=jsonschema.FormatChecker())


def test_committed_schemas_and_samples_match_the_models():
    files = gen.expected_files()
    stale = [str(p.relative_to(ROOT)) for p, text in files.items() if not p.exists() or p.read_text() != text]
    assert stale == [], "run: .venv/bin/python scripts/gen_event_schemas.py"
    assert gen.main(["--check"]) == 0


def test_every_detail_type_has_one_schema_and_one_sample():
    assert len(PLATFORM_EVENT_TYPES) == 23 and len(QBSYNC_EVENT_TYPES) == 15
    platform = {_load(p)["detail-type"] for p in _samples("platform")}
    qbsync = {_load(p)["detail-type"] for p in _samples("qbsync")}
    assert platform == set(PLATFORM_EVENT_TYPES)
    assert qbsync == set(QBSYNC_EVENT_TYPES)
    for entity in ("ClientAccount", "Contact", "Service", "Invoice", "Payment", "Refund", "ProcessingFee"):
        for action in ("Created", "Updated", "Deleted"):
            assert f"{entity} {action}" in PLATFORM_EVENT_TYPES
    assert {"Invoice Voided", "Invoice Sent"} <= set(PLATFORM_EVENT_TYPES)


@pytest.mark.parametrize("sample", _samples("platform"), ids=lambda p: p.stem)
def test_platform_samples_validate_against_schema_and_parser(sample):
    event = _load(sample)
    jsonschema.Draft202012Validator(
        _schema("platform", sample), format_checker=jsonschema.FormatChecker()
    ).validate(event["detail"])
    parsed = parse_platform_event(event)
    assert event["detail-type"] == parsed.DETAIL_TYPE
    assert parsed.model_dump(mode="json") == event["detail"]  # lossless round trip (money stays text)


@pytest.mark.parametrize("sample", _samples("qbsync"), ids=lambda p: p.stem)
def test_qbsync_samples_validate_against_schema_and_model(sample):
    event = _load(sample)
    assert event["source"] == "qbsync"
    jsonschema.Draft202012Validator(
        _schema("qbsync", sample), format_checker=jsonschema.FormatChecker()
    ).validate(event["detail"])
    model = QBSYNC_EVENT_TYPES[event["detail-type"]].model_validate(event["detail"])
    assert model.model_dump(mode="json") == event["detail"]


def test_schema_rejects_what_the_parser_rejects():
    event = _load(ROOT / "events" / "platform" / "invoice_created.json")
    validator = jsonschema.Draft202012Validator(
        _schema("platform", ROOT / "events/platform/invoice_created.json")
    )
    bad = copy.deepcopy(event["detail"])
    bad["data"]["total"] = 633.88  # a JSON number, not a two-decimal string
    assert list(validator.iter_errors(bad))
    with pytest.raises(BadRequest):
        parse_platform_event({**event, "detail": bad})


def _invoice_event() -> dict:
    return _load(ROOT / "events" / "platform" / "invoice_created.json")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update(source="someone-else"), "source must be 'platform'"),
        (lambda e: e.update({"detail-type": "Invoice Exploded"}), "unknown platform event"),
        (lambda e: e.pop("detail-type"), "no detail-type"),
        (lambda e: e.update(detail="not an object"), "detail must be a JSON object"),
        (lambda e: e["detail"].pop("firm_id"), "firm_id: Field required"),
        (lambda e: e["detail"].update(version=0), "version"),
        (lambda e: e["detail"].update(occurred_at="2026-03-02T10:00:00"), "occurred_at"),
        (lambda e: e["detail"]["data"].update(total="633.9"), "data.total"),
        (lambda e: e["detail"]["data"].update(total=633.88), "data.total"),
        (lambda e: e["detail"]["data"].pop("id"), "data.id: Field required"),
        (lambda e: e["detail"]["data"].update(issue_date="2026-02-30"), "data.issue_date"),
        (lambda e: e["detail"]["data"].update(number=""), "data.number"),
        (
            lambda e: e["detail"]["data"].update(surprise=True),
            "data.surprise: Extra inputs are not permitted",
        ),
        (lambda e: e["detail"]["data"].update(line_items="none"), "data.line_items"),
        (lambda e: e["detail"]["data"].update(currency="usd"), "data.currency"),
    ],
)
def test_malformed_platform_events_raise_bad_request_naming_the_problem(mutate, message):
    event = _invoice_event()
    mutate(event)
    with pytest.raises(BadRequest) as err:
        parse_platform_event(event)
    assert message in str(err.value)
    assert err.value.http_status == 400


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda e: e["detail"]["data"].update(number="X" * 22), lambda d: len(d.number) == 22),
        (lambda e: e["detail"]["data"].update(line_items=[]), lambda d: d.line_items == []),
        (
            lambda e: e["detail"]["data"]["line_items"][0].update(amount="999.00"),
            lambda d: d.line_items[0].amount == Decimal("999.00"),
        ),
        (
            lambda e: e["detail"]["data"].update(subtotal="600.00", total="628.88"),
            lambda d: d.subtotal == Decimal("600.00"),
        ),
        (lambda e: e["detail"]["data"].update(issue_date="1776-07-04"), lambda d: d.issue_date.year == 1776),
        (lambda e: e["detail"]["data"].update(tax_total="-1.00"), lambda d: d.tax_total == Decimal("-1.00")),
    ],
)
def test_what_quickbooks_would_refuse_is_well_typed_and_accepted(mutate, check):
    """Issue 11: a well-typed value QuickBooks would refuse is not a malformed event; it reaches its record,
    where qbsync.outbound.mapping.check_record turns it into an explained error (tests/unit/outbound)."""
    event = _invoice_event()
    mutate(event)
    parsed = parse_platform_event(event)
    assert check(parsed.data)


def test_bad_request_never_echoes_personal_data():
    event = _load(ROOT / "events" / "platform" / "contact_created.json")
    event["detail"]["data"]["email"] = "not-an-email jane.private"
    event["detail"]["data"]["display_name"] = ""
    with pytest.raises(BadRequest) as err:
        parse_platform_event(event)
    assert "data.email" in str(err.value) and "data.display_name" in str(err.value)
    assert "jane.private" not in str(err.value)
    assert err.value.__cause__ is None  # the pydantic error (with inputs) is not chained
    assert err.value.extra["event_id"] == event["detail"]["event_id"]


def test_payment_rules():
    event = _load(ROOT / "events" / "platform" / "payment_created.json")
    parsed = parse_platform_event(event)
    assert isinstance(parsed, PaymentCreated)
    assert parsed.data.amount == Decimal("700.00")
    assert sum(a.amount for a in parsed.data.allocations) == Decimal("700.00")
    assert parsed.data.credit_source is None

    over = copy.deepcopy(event)
    over["detail"]["data"]["allocations"][0]["amount"] = "700.00"
    # over-allocated: well typed, so accepted; an error on the record (mapping.check_record), not a refusal
    assert sum(a.amount for a in parse_platform_event(over).data.allocations) > Decimal("700.00")

    credit = copy.deepcopy(event)
    credit["detail"]["data"].update(method="promotional_credit", processor=None, reference=None, deposit=None)
    assert parse_platform_event(credit).data.credit_source == "promotional_credit"

    zero = copy.deepcopy(event)
    zero["detail"]["data"]["amount"] = "0.00"
    assert parse_platform_event(zero).data.amount == Decimal("0.00")  # an error on the record, as above

    typed = copy.deepcopy(event)
    typed["detail"]["data"]["amount"] = 700  # a JSON number is still not money: malformed
    with pytest.raises(BadRequest, match=r"data\.amount"):
        parse_platform_event(typed)


def test_invoice_money_is_decimal_and_serializes_with_two_places():
    parsed = parse_platform_event(_invoice_event())
    assert isinstance(parsed, InvoiceCreated)
    assert parsed.data.total == Decimal("633.88") and parsed.record_id == "inv-400"
    assert parsed.record_version_key == "Invoice#inv-400#1"
    assert parsed.data.line_items[0].quantity == Decimal("3.5")
    dumped = json.loads(parsed.model_dump_json())
    assert dumped["data"]["tax_total"] == "28.88" and dumped["data"]["line_items"][1]["quantity"] == "1"


def test_qbsync_events_fill_event_id_and_time_and_reject_naive_times():
    a = ConnectionChanged(
        firm_id="f1", correlation_id="c1", change="connected", status="connected", realm_id="r1"
    )
    b = ConnectionChanged(
        firm_id="f1", correlation_id="c1", change="connected", status="connected", realm_id="r1"
    )
    assert a.event_id != b.event_id
    assert a.occurred_at.tzinfo is not None and a.occurred_at <= datetime.now(UTC)
    assert ConnectionChanged.DETAIL_TYPE == "Connection Changed"
    with pytest.raises(ValueError):
        InvoicePaid(
            firm_id="f1",
            correlation_id="c1",
            realm_id="r1",
            invoice_id="i",
            qbo_invoice_id="q",
            paid_on="2026-01-01",
            total="10.00",
            occurred_at=datetime(2026, 1, 1),
        )


def test_readme_examples_are_the_committed_samples():
    import re

    readme = (ROOT / "docs" / "events" / "README.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", readme, flags=re.S)]
    assert blocks, "the contract shows at least one example"
    for block in blocks:
        source, name = block["source"], gen.file_name(block["detail-type"])
        assert block == _load(ROOT / "events" / source / f"{name}.json")
