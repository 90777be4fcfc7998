"""The drift report counts the payments an accountant records in QuickBooks once inbound sync delivered them
to the platform (PRODUCT.md D.3, J.3): the real inbound worker announces them, then the report
(``wiring.drift_reports().run``) reads QuickBooks on moto + the simulator. A delivered payment is no drift;
one not confirmed delivered yet explains the difference it makes, by its error-center id."""

from __future__ import annotations

from datetime import UTC, datetime

from qbsync import wiring
from qbsync.reconcile.report import finding_item

from tests.fixtures.firms import new_firm
from tests.integration.inbound.conftest import InboundStack

OK = {"batchItemFailures": []}


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _findings(firm: str) -> list[tuple[str, str, str, list[str]]]:
    report = wiring.drift_reports().run(firm)
    assert report.status == "done"
    return sorted(
        (f.kind, f.entity_type, f.platform_id, finding_item(f)["explained_by"]) for f in report.findings
    )


def test_payments_recorded_in_quickbooks_and_delivered_leave_a_clean_report(inbound: InboundStack) -> None:
    firm = new_firm()
    qbo = inbound.sync_invoices(firm, ("inv-400", "N-400"), ("inv-401", "N-401"))
    realm = inbound.realm_of(firm)
    accountant = inbound.accountant_of(firm)
    customer = inbound.customer_of(firm)
    assert _findings(firm) == []
    # paid in full, and partly (200.00 of 605.00), in QuickBooks; inbound sync delivers both
    full = accountant.receive_payment(customer, [(qbo["inv-400"], "605.00")], txn_date=_today())
    part = accountant.receive_payment(customer, [(qbo["inv-401"], "200.00")], txn_date=_today())
    notice = inbound.notice(realm, ("Payment", full["Id"], "Create"), ("Payment", part["Id"], "Create"))
    assert inbound.inbound(notice) == OK
    for payment in (full, part):
        state = inbound.payments.get(firm, realm, payment["Id"])
        assert state is not None and state.state == "announced"

    assert _findings(firm) == []

    # the partial payment's next version is claimed but its announcement not confirmed (a crash between the
    # claim and the publish): the platform may not have it, so the report says what explains the difference
    inbound.sync_table.update(
        {"pk": f"FIRM#{firm}#REALM#{realm}", "sk": f"INPAY#{part['Id']}"},
        update="SET #s = :a, final_state = :f",
        names={"#s": "state"},
        values={":a": "announcing", ":f": "announced"},
    )
    ref = f"qbo_payment#{realm}:{part['Id']}"
    assert _findings(firm) == [
        ("balance_mismatch", "client_account", "acct-100", ["invoice#inv-401", ref]),
        ("paid_status_mismatch", "invoice", "inv-401", [ref]),
    ]
    # the redelivery publishes and finishes it: clean again
    assert inbound.inbound(inbound.notice(realm, ("Payment", part["Id"], "Create"))) == OK
    assert _findings(firm) == []


def test_a_customer_credit_recorded_in_quickbooks_explains_the_clients_balance(inbound: InboundStack) -> None:
    """A payment applied to no invoice (a customer credit) is never announced, yet it lowers QuickBooks'
    customer balance: the client's balance_mismatch names it instead of being left unexplained."""
    firm = new_firm()
    inbound.sync_invoices(firm, ("inv-400", "N-400"))
    realm = inbound.realm_of(firm)
    customer = inbound.customer_of(firm)
    assert _findings(firm) == []
    credit = inbound.accountant_of(firm).receive_payment(customer, [], txn_date=_today(), TotalAmt=50.0)
    assert inbound.inbound(inbound.notice(realm, ("Payment", credit["Id"], "Create"))) == OK
    seen = inbound.payments.get(firm, realm, credit["Id"])
    assert seen is None or seen.state == "ignored"  # a credit is not announced (D.3)

    report = wiring.drift_reports().run(firm)
    (finding,) = report.findings
    assert (finding.kind, finding.entity_type, finding.platform_id) == (
        "balance_mismatch",
        "client_account",
        "acct-100",
    )
    assert finding_item(finding)["explained_by"] == [f"qbo_payment#{realm}:{credit['Id']}"]
    assert [(d.field, d.was, d.now) for d in finding.differences] == [("balance", "605.00 USD", "555.00 USD")]


def test_a_credit_memo_and_an_invoice_entered_in_quickbooks_explain_the_clients_balance(
    inbound: InboundStack,
) -> None:
    """A credit memo and an invoice the accountant enters in QuickBooks for a synced client move its
    QuickBooks balance (605.00 - 30.00 + 100.00) and no platform record: each is named in the client's
    balance_mismatch, by entity and id, instead of the difference being left unexplained."""
    firm = new_firm()
    inbound.sync_invoices(firm, ("inv-400", "N-400"))
    realm = inbound.realm_of(firm)
    customer = inbound.customer_of(firm)
    assert _findings(firm) == []
    [sales] = [i for i in inbound.sim.control.entities(realm, "Item") if i["Name"] == "Sales"]

    def body(amount: float) -> dict[str, object]:
        detail = {"ItemRef": {"value": sales["Id"]}, "TaxCodeRef": {"value": "NON"}}
        line = {"DetailType": "SalesItemLineDetail", "Amount": amount, "SalesItemLineDetail": detail}
        return {"CustomerRef": {"value": customer}, "TxnDate": _today(), "Line": [line]}

    accountant = inbound.accountant_of(firm)
    memo = accountant.create("CreditMemo", body(30.0))
    invoice = accountant.create("Invoice", body(100.0))

    report = wiring.drift_reports().run(firm)
    (finding,) = report.findings
    assert (finding.kind, finding.platform_id) == ("balance_mismatch", "acct-100")
    assert [(d.field, d.was, d.now) for d in finding.differences] == [("balance", "605.00 USD", "675.00 USD")]
    assert finding_item(finding)["explained_by"] == [
        f"qbo_credit_memo#{realm}:{memo['Id']}",
        f"qbo_invoice#{realm}:{invoice['Id']}",
    ]
    # the linked Customer, Item and Invoice; then the client's Payments, CreditMemos and Invoices
    assert report.qbo_queries == 6
