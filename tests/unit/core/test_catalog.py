"""The error-center catalogue: every PRODUCT.md E.2 error is explained, in the right category, with a fix.

Errors are built the way production builds them: QBO faults through ``qbsync.qbo.faults.error_from_fault``,
mapping failures as ``MappingError``, connection failures as ``ReconnectRequired``.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from qbsync.catalog import FAULTS, REASONS, Explanation, category_for_entity, explain
from qbsync.errors import (
    ConfigurationError,
    DataError,
    QbsyncError,
    ReconnectRequired,
    ServiceUnavailable,
    Throttled,
    UncertainOutcome,
)
from qbsync.outbound.mapping import MappingError
from qbsync.qbo.faults import FaultError, ParsedFault, error_from_fault
from qbsync.vocab import ERROR_CATEGORIES as CATEGORIES

CLIENT_NAME = "Rivera & Sons LLC"


def fault(
    code: str,
    *,
    message: str = "A business validation error has occurred while processing your request",
    detail: str | None = None,
    element: str | None = None,
    entity: str = "Invoice",
    status: int = 400,
    fault_type: str = "ValidationFault",
) -> QbsyncError:
    parsed = ParsedFault(fault_type, (FaultError(code, message, detail, element),))
    return error_from_fault(parsed, status=status, realm_id="9130", entity=entity, is_write=True)


def all_text(exp: Explanation) -> str:
    return " ".join(str(v) for v in dataclasses.asdict(exp).values())


# --- E.2: the errors that must be explained -------------------------------------------------------------

E2_CASES = [
    # (id, error, entity_type, category, code, a word the fix must contain)
    (
        "customerref_required_2020_detail",
        fault(
            "2020",
            message="Required param missing, need to supply the required value for the API",
            detail="Required parameter CustomerRef is missing in the request",
        ),
        "invoice",
        "Invoices",
        "customer_missing",
        "customer",
    ),
    (
        "customerref_required_2020_element",
        fault("2020", message="Required param missing", element="CustomerRef", entity="Payment"),
        "payment",
        "Payments",
        "customer_missing",
        "Accounts",
    ),
    (
        "duplicate_document_number",
        fault(
            "6140",
            message="Duplicate Document Number Error",
            detail="Duplicate Document Number Error : DocNumber=TD-10042 is assigned to TxnType=Invoice "
            "with TxnId=6575",
        ),
        "invoice",
        "Invoices",
        "duplicate_document_number",
        "number",
    ),
    (
        "tax_rate_unmapped_mapping",
        MappingError(
            "Taxes",
            "tax_rate_unmapped",
            "Tax rate 'tr_1' is not mapped. Map it in Tax mapping.",
            entity="Invoice",
            entity_id="inv_1",
        ),
        "invoice",
        "Taxes",
        "tax_rate_unmapped",
        "Tax mapping",
    ),
    (
        "tax_rate_invalid_qbo_6100",
        fault("6100", message="Invalid Line TaxCode"),
        "invoice",
        "Taxes",
        "tax_rate_unmapped",
        "Tax mapping",
    ),
    (
        "tax_code_reference_2500",
        fault("2500", message="Invalid Reference Id", element="Line.SalesItemLineDetail.TaxCodeRef"),
        "invoice",
        "Taxes",
        "tax_rate_unmapped",
        "Tax mapping",
    ),
    (
        "us_invoice_several_tax_rates_mapping",
        MappingError(
            "Taxes",
            "several_tax_rates_us",
            "US invoices take one tax rate.",
            entity="Invoice",
            entity_id="inv_1",
        ),
        "invoice",
        "Taxes",
        "several_tax_rates_us",
        "same tax rate",
    ),
    (
        "us_invoice_several_tax_rates_qbo_6000",
        fault(
            "6000", detail="Business Validation Error: You can't use more than one tax rate on a US invoice"
        ),
        "invoice",
        "Taxes",
        "several_tax_rates_us",
        "same tax rate",
    ),
    (
        "closed_period_6200",
        fault("6200", message="Account Period Closed", entity="Payment"),
        "payment",
        "Payments",
        "books_closed",
        "closing date",
    ),
    (
        "closed_period_password_6210",
        fault("6210", message="Account Period Closed, Requires Password"),
        "invoice",
        "Invoices",
        "books_closed",
        "closing date",
    ),
    (
        "failed_manual_payment",
        DataError("manual payment could not be created", reason_code="manual_payment_failed"),
        "payment",
        "Payments",
        "manual_payment_failed",
        "accounting period",
    ),
    (
        "authentication_failed_401",
        error_from_fault(
            ParsedFault(
                "AUTHENTICATION",
                (
                    FaultError(
                        "3200",
                        "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                        "Token expired: eyJlbmMiOiJBMTI4Q0JDLUhTMjU2",
                        None,
                    ),
                ),
            ),
            status=401,
            realm_id="9130",
            entity="Invoice",
            is_write=True,
        ),
        "invoice",
        "Connection",
        "authentication_failed",
        "connect",
    ),
    (
        "invoice_payment_customers_differ_reason",
        DataError("customers differ", reason_code="payment_customer_mismatch"),
        "payment",
        "Payments",
        "payment_customer_mismatch",
        "same client",
    ),
    (
        "invoice_payment_customers_differ_qbo_6000",
        fault(
            "6000",
            detail="Business Validation Error: The customer on the payment does not match "
            "the customer on the linked invoice",
            entity="Payment",
        ),
        "payment",
        "Payments",
        "payment_customer_mismatch",
        "same client",
    ),
    (
        "payment_date_in_future",
        DataError("payment date in the future", reason_code="payment_date_future"),
        "payment",
        "Payments",
        "payment_date_future",
        "date",
    ),
    (
        "payment_period_not_open",
        DataError("no open period", reason_code="payment_period_closed"),
        "payment",
        "Payments",
        "payment_period_closed",
        "closing date",
    ),
    (
        "overpayment_reason",
        DataError("overpays", reason_code="payment_overpays_invoice"),
        "payment",
        "Payments",
        "payment_overpays_invoice",
        "amount",
    ),
    (
        "overpayment_qbo_6000",
        fault(
            "6000",
            detail="Business Validation Error: The payment amount exceeds the open balance of the invoice",
            entity="Payment",
        ),
        "payment",
        "Payments",
        "payment_overpays_invoice",
        "amount",
    ),
    (
        "qbo_side_disabled_sync_invalid_grant",
        ReconnectRequired("Intuit rejected the refresh token (invalid_grant)", oauth_error="invalid_grant"),
        "invoice",
        "Connection",
        "qbo_sync_disabled",
        "Connect",
    ),
    (
        "qbo_side_disabled_sync_needs_reconnect",
        ReconnectRequired("the QuickBooks connection is needs reconnect", status="needs_reconnect"),
        "payment",
        "Connection",
        "qbo_sync_disabled",
        "Connect",
    ),
    (
        "entry_deleted_in_qbo_610",
        fault(
            "610",
            message="Object Not Found",
            detail="Object Not Found : Something you're trying to use has been made inactive.",
        ),
        "invoice",
        "Invoices",
        "qbo_entry_deleted",
        "restore",
    ),
    (
        "entry_deleted_in_qbo_reason",
        DataError("deleted in QuickBooks", reason_code="qbo_entry_deleted"),
        "client_account",
        "Accounts",
        "qbo_entry_deleted",
        "restore",
    ),
    (
        "entry_edited_in_qbo_5010",
        fault("5010", message="Stale Object Error"),
        "invoice",
        "Invoices",
        "qbo_entry_edited",
        "Resync",
    ),
    (
        "entry_edited_in_qbo_reason",
        DataError("edited in QuickBooks", reason_code="qbo_entry_edited"),
        "payment",
        "Payments",
        "qbo_entry_edited",
        "Resync",
    ),
    (
        "payment_method_credit_card_missing",
        MappingError(
            "Payments",
            "payment_method_missing",
            "QuickBooks has no active payment method 'Credit Card'. Add it in QuickBooks.",
            entity="Payment",
            entity_id="pay_1",
        ),
        "payment",
        "Payments",
        "payment_method_missing",
        "Payment methods",
    ),
]


@pytest.mark.parametrize(
    ("error", "entity_type", "category", "code", "fix_word"),
    [case[1:] for case in E2_CASES],
    ids=[case[0] for case in E2_CASES],
)
def test_every_e2_error_is_explained_with_its_fix(error, entity_type, category, code, fix_word):
    exp = explain(error, entity_type=entity_type)
    assert exp.category == category
    assert exp.code == code
    assert exp.title and exp.explanation
    assert fix_word.lower() in exp.fix.lower()
    assert len(exp.fix) > 40  # a real instruction, not a label


def test_explain_without_entity_type_uses_the_errors_entity():
    assert explain(fault("6140", entity="Payment")).category == "Payments"
    assert explain(fault("6140", entity="RefundReceipt")).category == "Refunds"


def test_mapping_error_keeps_its_category_and_specific_explanation():
    err = MappingError(
        "Payments",
        "books_closed",
        "The books are closed in QuickBooks through 2026-03-31 and this Payment is dated 2026-03-02.",
        entity="Payment",
        entity_id="pay_9",
    )
    exp = explain(err, entity_type="payment")
    assert exp.category == "Payments"
    assert exp.code == "books_closed"
    assert "2026-03-31" in exp.explanation
    assert "closing date" in exp.fix


def test_unknown_mapping_reason_falls_back_to_its_own_explanation():
    err = MappingError("Services", "brand_new_rule", "Rename the service, then resync.")
    exp = explain(err, entity_type="service")
    assert (exp.category, exp.code, exp.fix) == (
        "Services",
        "brand_new_rule",
        "Rename the service, then resync.",
    )


def test_unknown_qbo_code_gets_a_generic_explanation_naming_the_code():
    exp = explain(fault("9876", message="Something odd"), entity_type="refund")
    assert exp.category == "Refunds"
    assert exp.code == "qbo_9876"
    assert "9876" in exp.title and "9876" in exp.explanation
    assert "Resync" in exp.fix


def test_unknown_error_without_code_is_still_explained():
    exp = explain(QbsyncError("boom"), entity_type="fee")
    assert exp.category == "Expenses"
    assert exp.code == "internal_error"
    assert exp.fix


@pytest.mark.parametrize(
    ("entity_type", "category"),
    [
        ("client_account", "Accounts"),
        ("ClientAccount", "Accounts"),
        ("service", "Services"),
        ("invoice", "Invoices"),
        ("payment", "Payments"),
        ("credit_memo", "Payments"),
        ("refund", "Refunds"),
        ("fee", "Expenses"),
        ("contact", "Contacts"),
        ("Customer", "Accounts"),
        ("Item", "Services"),
        ("Purchase", "Expenses"),
        ("nonsense", None),
        (None, None),
    ],
)
def test_entity_type_default_category(entity_type, category):
    assert category_for_entity(entity_type) == category


@pytest.mark.parametrize(
    ("error", "code", "category"),
    [
        (Throttled("slow down", retry_after=60, qbo_code="3001"), "throttled", "Invoices"),
        (UncertainOutcome("lost response"), "uncertain_outcome", "Invoices"),
        (ServiceUnavailable("503"), "qbo_unavailable", "Invoices"),
        (ConfigurationError("missing setting"), "configuration_error", "Connection"),
        (fault("3100", status=403, fault_type="AuthorizationFault"), "authorization_failed", "Connection"),
        (ReconnectRequired("not connected", status="disconnected"), "not_connected", "Connection"),
        (fault("6190", message="Invalid Company Status"), "company_inactive", "Connection"),
        (
            fault("6240", message="Duplicate Name Exists Error", entity="Customer"),
            "duplicate_name",
            "Invoices",
        ),
        (fault("2500", element="Line.SalesItemLineDetail.ItemRef"), "service_missing", "Invoices"),
        (
            fault("2020", message="Required param missing", detail="Required parameter Line is missing"),
            "required_field_missing",
            "Invoices",
        ),
        (fault("6000", detail="Business Validation Error: unknown rule"), "business_rule", "Invoices"),
    ],
)
def test_other_known_errors(error, code, category):
    exp = explain(error, entity_type="invoice")
    assert (exp.code, exp.category) == (code, category)


def test_fault_based_tax_errors_are_taxes_whatever_the_entity():
    exp = explain(
        fault("6000", detail="Business Validation Error: Make sure all your tax codes are valid"),
        entity_type="invoice",
    )
    assert (exp.category, exp.code) == ("Taxes", "tax_rate_unmapped")


def test_connection_errors_are_in_connection_even_for_a_service():
    assert explain(
        fault("3200", status=401, fault_type="AUTHENTICATION"), entity_type="service"
    ).category == ("Connection")


def test_no_output_copies_qbo_detail_or_tokens():
    detail = f"The name supplied already exists. : Another customer is using {CLIENT_NAME}. Id=1067"
    err = fault("6240", message="Duplicate Name Exists Error", detail=detail, entity="Customer")
    auth = error_from_fault(
        ParsedFault(
            "AUTHENTICATION",
            (FaultError("3200", "AuthenticationFailed", "Token expired: eyJsecretTOKEN", None),),
        ),
        status=401,
        realm_id="9130",
    )
    for exp in (explain(err, entity_type="client_account"), explain(auth)):
        text = all_text(exp)
        assert CLIENT_NAME not in text and "1067" not in text
        assert "eyJ" not in text


def test_catalogue_is_consistent():
    assert set(CATEGORIES) == {
        "Accounts",
        "Invoices",
        "Payments",
        "Refunds",
        "Expenses",
        "Services",
        "Contacts",
        "Taxes",
        "Connection",
    }
    for entry in list(REASONS.values()) + [rule.entry for rule in FAULTS]:
        assert entry.category is None or entry.category in CATEGORIES
        assert entry.title and entry.explanation and entry.fix
        # no jargon for the firm admin
        assert not re.search(r"\bfault\b|SyncToken|\bAPI\b", entry.explanation + entry.fix, re.IGNORECASE)
    for code, entry in REASONS.items():
        assert code == entry.code


def test_explain_refuses_non_qbsync_errors():
    with pytest.raises(TypeError):
        explain(ValueError("x"))  # type: ignore[arg-type]
