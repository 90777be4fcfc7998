"""Property-based: totals and line items survive the mapping to the cent, on the wire (JSON)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qbsync.models.firm_settings import FirmSyncSettings, TaxMapping
from qbsync.models.platform_events import Invoice, Payment
from qbsync.outbound.mapping import Resolved, invoice_payload, line_amount, payment_payload

from tests.unit.outbound.support import make_ref

REF = make_ref()
AST_REF = make_ref(TaxPrefs__PartnerTaxEnabled=True)
SETTINGS = FirmSyncSettings(
    tax_map={"tr_sf": TaxMapping(tax_code_id="3", primary_rate_id="1", secondary_rate_id="2")},
    work_type_map={"wt_1": "31", "wt_2": "32"},
    default_service_id="39",
)
SERVICES = [f"svc_{i}" for i in range(6)]
ITEM_IDS = {sid: str(100 + i) for i, sid in enumerate(SERVICES)}
BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

quantities = st.decimals(min_value=0, max_value=9999, places=4, allow_nan=False, allow_infinity=False)
rates = st.decimals(min_value=0, max_value=99999, places=2, allow_nan=False, allow_infinity=False)
cents = st.integers(min_value=1, max_value=5_000_000).map(lambda c: Decimal(c).scaleb(-2))


def wire(body: dict[str, Any]) -> dict[str, Any]:
    """What QBO receives: the JSON text, read back with exact decimals."""
    return json.loads(json.dumps(body), parse_float=Decimal)  # type: ignore[no-any-return]


@st.composite
def invoice_lines(draw: st.DrawFn, max_lines: int = 12) -> list[dict[str, Any]]:
    lines = []
    for index in range(draw(st.integers(min_value=1, max_value=max_lines))):
        qty = draw(quantities).normalize()
        rate = draw(rates)
        amount = line_amount(qty, rate)
        # the platform may be a cent off quantity x rate; QBO must still get its exact amount
        amount += draw(st.sampled_from([Decimal("0.00")] * 4 + [Decimal("0.01"), Decimal("-0.01")]))
        if amount < 0:
            amount = Decimal("0.00")
        target = draw(st.sampled_from(["service", "work_type", "unmapped_work_type"]))
        lines.append(
            {
                "id": f"l{index}",
                "service_id": draw(st.sampled_from(SERVICES)) if target == "service" else None,
                "work_type_id": {"service": None, "work_type": "wt_1", "unmapped_work_type": "wt_9"}[target],
                "quantity": format(qty, "f"),
                "rate": f"{rate:.2f}",
                "amount": f"{amount:.2f}",
                "tax_rate_id": draw(st.sampled_from([None, "tr_sf"])),
            }
        )
    return lines


@st.composite
def invoices(draw: st.DrawFn, index: int = 0, max_lines: int = 12) -> Invoice:
    lines = draw(invoice_lines(max_lines))
    subtotal = sum((Decimal(x["amount"]) for x in lines), Decimal("0.00"))
    taxed = any(x["tax_rate_id"] for x in lines)
    tax = draw(cents) if taxed and draw(st.booleans()) else Decimal("0.00")
    return Invoice.model_validate(
        {
            "id": f"inv_{index}",
            "number": f"PM-{index}",
            "account_id": "acc_1",
            "status": "sent",
            "issue_date": "2026-03-02",
            "currency": "USD",
            "line_items": lines,
            "subtotal": f"{subtotal:.2f}",
            "tax_total": f"{tax:.2f}",
            "total": f"{subtotal + tax:.2f}",
            "balance_due": f"{subtotal + tax:.2f}",
        }
    )


def expected_item(line: Any) -> str:
    if line.service_id:
        return ITEM_IDS[line.service_id]
    return SETTINGS.work_type_map.get(line.work_type_id, SETTINGS.default_service_id)


def check_invoice(inv: Invoice, body: dict[str, Any]) -> None:
    lines = body["Line"]
    assert len(lines) == len(inv.line_items)
    line_sum = sum((x["Amount"] for x in lines), Decimal("0"))
    assert line_sum == inv.subtotal
    total_tax = Decimal(body.get("TxnTaxDetail", {}).get("TotalTax", 0))
    assert line_sum + total_tax == inv.total
    for qbo, pm in zip(lines, inv.line_items, strict=True):
        detail = qbo["SalesItemLineDetail"]
        qty, price = Decimal(detail["Qty"]), Decimal(detail["UnitPrice"])
        assert qbo["Amount"] == pm.amount
        # QBO's own check (else fault 6070): Amount == round_half_up(Qty x UnitPrice, 2)
        assert (qty * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) == pm.amount
        assert detail["ItemRef"]["value"] == expected_item(pm)
        if line_amount(pm.quantity, pm.rate) == pm.amount:
            assert (qty, price) == (pm.quantity, pm.rate)
        assert detail["TaxCodeRef"]["value"] == ("TAX" if pm.tax_rate_id else "NON")


@BOUNDED
@given(inv=invoices())
def test_invoice_totals_and_lines_survive(inv: Invoice) -> None:
    resolved = Resolved(customer_id="58", item_ids=ITEM_IDS)
    check_invoice(inv, wire(invoice_payload(inv, resolved, REF, SETTINGS)))
    check_invoice(inv, wire(invoice_payload(inv, resolved, AST_REF, SETTINGS)))


@st.composite
def payments(draw: st.DrawFn) -> tuple[list[Invoice], Payment]:
    count = draw(st.integers(min_value=1, max_value=6))
    invs = [draw(invoices(index=i, max_lines=3)) for i in range(count)]
    allocations = []
    for inv in invs:
        if inv.total <= 0:
            continue
        paid = draw(st.integers(min_value=1, max_value=int(inv.total * 100))) / Decimal(100)
        allocations.append({"invoice_id": inv.id, "amount": f"{paid:.2f}"})
    if not allocations:
        allocations.append({"invoice_id": invs[0].id, "amount": "1.00"})
    allocated = sum((Decimal(a["amount"]) for a in allocations), Decimal("0.00"))
    unapplied = draw(st.sampled_from([Decimal("0.00")] * 3 + [Decimal("0.01"), Decimal("12.34")]))
    pay = Payment.model_validate(
        {
            "id": "pay_1",
            "account_id": "acc_1",
            "payment_date": "2026-03-10",
            "currency": "USD",
            "amount": f"{allocated + unapplied:.2f}",
            "method": draw(st.sampled_from(["card", "cash", "check", "bank_transfer"])),
            "allocations": allocations,
        }
    )
    return invs, pay


@BOUNDED
@given(data=payments())
def test_payment_split_across_invoices_survives(data: tuple[list[Invoice], Payment]) -> None:
    invs, pay = data
    qbo_ids = {inv.id: str(500 + i) for i, inv in enumerate(invs)}
    body = wire(payment_payload(pay, Resolved(customer_id="58", invoice_ids=qbo_ids), REF, SETTINGS))
    assert Decimal(body["TotalAmt"]) == pay.amount  # fees are separate Purchases, never netted here
    assert len(body["Line"]) == len(pay.allocations)
    line_sum = sum((Decimal(x["Amount"]) for x in body["Line"]), Decimal("0"))
    assert line_sum == sum((a.amount for a in pay.allocations), Decimal("0"))
    assert line_sum <= Decimal(body["TotalAmt"])  # any remainder stays unapplied credit
    for qbo, alloc in zip(body["Line"], pay.allocations, strict=True):
        assert Decimal(qbo["Amount"]) == alloc.amount
        assert qbo["LinkedTxn"] == [{"TxnId": qbo_ids[alloc.invoice_id], "TxnType": "Invoice"}]
