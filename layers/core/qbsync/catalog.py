"""The error-center catalogue: what a sync error means for the firm admin and how to fix it (PRODUCT.md E).

:func:`explain` turns any :class:`~qbsync.errors.QbsyncError` into an :class:`Explanation` - the
error-center ``category``, a stable reason ``code``, a short ``title``, a plain-language ``explanation``
and the ``fix`` (what to do in QuickBooks or in the platform). It is table-driven, first match wins:

1. a ``reason_code`` the error carries (``MappingError.reason_code``, or ``reason_code=`` passed as an
   extra to any qbsync error, e.g. by the inbound worker: ``payment_customer_mismatch``) → that entry of
   :data:`REASONS`. For a :class:`~qbsync.outbound.mapping.MappingError` the error's own category and its
   ``explanation`` (specific: dates, account ids) are kept; the table adds the title and the fix.
2. :class:`~qbsync.errors.ReconnectRequired` → a Connection entry chosen by QBO code / OAuth error.
3. the QBO fault code, refined by the ``element`` the fault names or by a pattern over QBO's ``Detail``
   (several cases share a code: 2020 with element CustomerRef, 6000 about taxes, customer mismatch or
   overpayment) → :data:`FAULTS`.
4. the error class (throttled, unavailable, uncertain outcome, configuration) → :data:`CLASSES`.
5. anything else → a generic entry that names the QuickBooks code.

Entries whose category is ``None`` take the category of the record's entity type
(:func:`category_for_entity`). Nothing here copies QBO's ``Detail`` into the output: it is only matched
(it can hold customer names); texts name no client data and no tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from qbsync import vocab
from qbsync.errors import (
    ConfigurationError,
    QbsyncError,
    ReconnectRequired,
    RetryableError,
    ServiceUnavailable,
    Throttled,
    UncertainOutcome,
)
from qbsync.vocab import ErrorCategory

__all__ = [
    "CLASSES",
    "FAULTS",
    "REASONS",
    "Explanation",
    "FaultRule",
    "category_for_entity",
    "explain",
]

ACCOUNTS: ErrorCategory = "Accounts"
INVOICES: ErrorCategory = "Invoices"
PAYMENTS: ErrorCategory = "Payments"
REFUNDS: ErrorCategory = "Refunds"
EXPENSES: ErrorCategory = "Expenses"
SERVICES: ErrorCategory = "Services"
CONTACTS: ErrorCategory = "Contacts"
TAXES: ErrorCategory = "Taxes"
CONNECTION: ErrorCategory = "Connection"


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


# Record types, platform entities, markers and QBO entities (qbsync.vocab), and a few more words an error's
# entity may carry, normalised by _key → default category.
_ENTITY_CATEGORY: dict[str, str] = {
    **{
        _key(name): info.category
        for info in vocab.RECORD_TYPE_INFO.values()
        for name in (
            info.record_type,
            info.platform_entity or info.record_type,
            info.marker,
            *info.qbo_entities,
        )
    },
    "account": ACCOUNTS,
    "credit": PAYMENTS,
    "expense": EXPENSES,
    "vendor": EXPENSES,
    "contact": CONTACTS,
    "tax": TAXES,
    "taxcode": TAXES,
    "taxrate": TAXES,
    "connection": CONNECTION,
}

_GENERIC_FIX = (
    "Open the record in the platform and check the details named above, then choose Resync. "
    "If it keeps failing, contact support and quote the QuickBooks code."
)


@dataclass(frozen=True, slots=True)
class Explanation:
    """What an error means for the firm admin. ``code`` is the stable reason code stored in the log."""

    category: str
    code: str
    title: str
    explanation: str
    fix: str


@dataclass(frozen=True, slots=True)
class _Entry:
    code: str
    title: str
    explanation: str
    fix: str
    category: str | None = None  # None: the record's entity type decides


@dataclass(frozen=True, slots=True)
class FaultRule:
    """A QBO fault code, optionally narrowed by the ``element`` or a pattern over Message/Detail."""

    qbo_code: str
    entry: _Entry
    element: re.Pattern[str] | None = None
    detail: re.Pattern[str] | None = None

    def matches(self, code: str | None, element: str, detail: str) -> bool:
        if code != self.qbo_code:
            return False
        if self.element is not None and not self.element.search(element):
            return False
        return self.detail is None or bool(self.detail.search(detail))


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# --- shared entries (several codes lead to the same advice) -------------------------------------------

_CUSTOMER_MISSING = _Entry(
    "customer_missing",
    "Client not found in QuickBooks (CustomerRef is required)",
    "QuickBooks needs a customer for this transaction, but the client account it belongs to is not "
    "linked to a QuickBooks customer (it was never synced, its sync is turned off, or the customer was "
    "deleted or made inactive in QuickBooks).",
    "Open the Accounts errors and fix the client account first: map it to an existing QuickBooks "
    "customer or create a new one, and make sure the account's QuickBooks sync is on. If the customer "
    "was made inactive in QuickBooks, reactivate it (Sales > Customers > filter Inactive > Make active). "
    "Then Resync this record.",
)
_BOOKS_CLOSED = _Entry(
    "books_closed",
    "The accounting period is closed in QuickBooks",
    "The transaction is dated on or before the closing date of the books in QuickBooks, so QuickBooks "
    "refuses to record or change it (a failed manual payment is most often this).",
    "In QuickBooks go to Settings > Account and settings > Advanced > Accounting and move the closing "
    "date before the transaction date (or turn off Close the books), or change the transaction date in "
    "the platform to a date in an open period. Then Resync.",
)
_TAX_RATE_UNMAPPED = _Entry(
    "tax_rate_unmapped",
    "Tax rate not mapped to QuickBooks",
    "A tax rate used on this record has no matching QuickBooks tax rate in the sync settings, or the "
    "QuickBooks tax code it is mapped to no longer exists or is inactive.",
    "Open the QuickBooks integration settings, go to Tax mapping and map the missing tax rate to an "
    "active QuickBooks tax rate (add or reactivate it in QuickBooks under Taxes if needed). Then Resync "
    "from the error center.",
    TAXES,
)
_SEVERAL_TAX_RATES_US = _Entry(
    "several_tax_rates_us",
    "US invoices can have only one tax rate",
    "QuickBooks Online for the United States applies a single sales-tax rate to a whole invoice; this "
    "invoice uses different tax rates on its lines.",
    "Edit the invoice in the platform so that every taxable line uses the same tax rate (split it into "
    "one invoice per rate if you need several), then Resync.",
    TAXES,
)
_CUSTOMER_MISMATCH = _Entry(
    "payment_customer_mismatch",
    "Invoice customer differs from payment customer",
    "The payment is applied to an invoice that belongs to a different customer than the payment itself. "
    "QuickBooks only lets a payment pay invoices of its own customer.",
    "Change the payment (or the invoice) so both name the same client - in QuickBooks open the payment "
    "and pick the invoice's customer, or in the platform apply the payment to that client's invoice - "
    "then retry the payment.",
    PAYMENTS,
)
_OVERPAYMENT = _Entry(
    "payment_overpays_invoice",
    "Payment will overpay the invoice",
    "The payment amount applied to the invoice is larger than the amount still due on it.",
    "Correct the amount applied to the invoice (in QuickBooks: open the payment and lower the amount "
    "on the invoice line; in the platform: fix the payment allocation), or leave the extra as a credit "
    "instead of applying it. Then retry the payment.",
    PAYMENTS,
)
_ENTRY_DELETED = _Entry(
    "qbo_entry_deleted",
    "Entry deleted or made inactive in QuickBooks",
    "A synced QuickBooks entry this record depends on (the record itself, or its customer, service, "
    "account or invoice) was deleted or made inactive in QuickBooks, so the two systems no longer match.",
    "If the deletion was a mistake, restore or reactivate the entry in QuickBooks (Settings > Audit log "
    "shows what changed) and Resync. Otherwise Resync to recreate it from the platform, or Skip this "
    "error if the record should stay out of QuickBooks.",
)
_ENTRY_EDITED = _Entry(
    "qbo_entry_edited",
    "Entry edited in QuickBooks",
    "This entry was changed in QuickBooks after it was synced from the platform (or while we were "
    "updating it), so the platform and QuickBooks no longer agree.",
    "Decide which version is right. To keep the platform's version, choose Resync (it overwrites the "
    "QuickBooks entry). To keep the QuickBooks version, make the same change in the platform, then "
    "Resync or Skip this error.",
)
_EDITED_IN_QBO = _Entry(
    "edited_in_quickbooks",
    "Edited in QuickBooks after it was synced",
    "Someone changed this record in QuickBooks after qbsync synced it from the platform; the explanation "
    "names what changed.",
    "Choose one: Resync pushes the platform's version to QuickBooks again (QuickBooks' change is "
    "overwritten); Accept QuickBooks' change (client accounts whose email, phone numbers or billing address "
    "changed) sends those details to the platform's contact; Unlink keeps QuickBooks' version and stops "
    "syncing this record (a manual sync later creates a new QuickBooks entry). If the change was a mistake, "
    "you can also undo it in QuickBooks: the error resolves by itself.",
)
_DELETED_IN_QBO = _Entry(
    "deleted_in_quickbooks",
    "Deleted in QuickBooks after it was synced",
    "Someone deleted this record in QuickBooks after qbsync synced it from the platform, so QuickBooks no "
    "longer has it.",
    "Choose one: Resync creates it in QuickBooks again from the platform's version (as a new QuickBooks "
    "entry); Unlink leaves it out of QuickBooks and stops syncing it (a manual sync later creates it again).",
)
_MISSING_IN_QBO = _Entry(
    "missing_in_quickbooks",
    "Missing in QuickBooks",
    "The drift report did not find this record's QuickBooks entry: it was deleted in QuickBooks, or the link "
    "points to an entry the company does not have.",
    "Choose one: Resync creates it in QuickBooks again from the platform's version (as a new QuickBooks "
    "entry); Relink links it to the QuickBooks entry that is the same record (give its QuickBooks Id); "
    "Unlink leaves it out of QuickBooks and stops syncing it.",
)
_AMOUNT_MISMATCH = _Entry(
    "amount_mismatch",
    "Amount differs in QuickBooks",
    "The drift report found a different amount in QuickBooks than the platform's (the explanation says was "
    "and now, to the cent): someone changed it in QuickBooks after it was synced.",
    "Choose one: Resync pushes the platform's version to QuickBooks again (QuickBooks' amounts are "
    "overwritten); Unlink keeps QuickBooks' version and stops syncing this record. If the change was a "
    "mistake, you can also undo it in QuickBooks: the next report finds the record matching again.",
)
_SYNC_DISABLED = _Entry(
    "qbo_sync_disabled",
    "Sync was turned off in QuickBooks",
    "QuickBooks no longer accepts our connection: the app was disconnected from the QuickBooks side "
    "(Apps > My apps, or by a QuickBooks admin), or its authorization has expired. Nothing is synced "
    "until the connection is restored.",
    "The firm owner opens the QuickBooks integration in the platform's settings and clicks Connect, "
    "signing in as a QuickBooks admin of the same company. Then choose Retry all in the error center.",
    CONNECTION,
)
_PAYMENT_METHOD_MISSING = _Entry(
    "payment_method_missing",
    "Payment method missing in QuickBooks",
    'The payment\'s method (for example "Credit Card") does not exist or is inactive in QuickBooks, so '
    "the payment cannot be recorded with it.",
    'In QuickBooks go to Settings > All lists > Payment methods. Add the method (e.g. "Credit Card") or, '
    "if it is listed as inactive, open it, make it active and Save. Then Resync the payment.",
    PAYMENTS,
)

#: Entries by stable reason code: the mapping rules' codes and the inbound-sync codes.
REASONS: dict[str, _Entry] = {
    e.code: e
    for e in (
        _CUSTOMER_MISSING,
        _BOOKS_CLOSED,
        _TAX_RATE_UNMAPPED,
        _SEVERAL_TAX_RATES_US,
        _CUSTOMER_MISMATCH,
        _OVERPAYMENT,
        _ENTRY_DELETED,
        _ENTRY_EDITED,
        _EDITED_IN_QBO,
        _DELETED_IN_QBO,
        _MISSING_IN_QBO,
        _AMOUNT_MISMATCH,
        _SYNC_DISABLED,
        _PAYMENT_METHOD_MISSING,
        _Entry(
            "customer_not_synced",
            "Waiting for the client account (CustomerRef is required)",
            "This record needs its client account in QuickBooks first, and that account is not synced yet.",
            "Check the Accounts errors: map the client account to an existing QuickBooks customer or "
            "create a new one, and make sure its QuickBooks sync is on. This record then syncs on Resync.",
        ),
        _Entry(
            "tax_code_invalid",
            "Invalid tax code",
            "The QuickBooks tax code chosen for this tax rate is not valid for the company.",
            "Open Tax mapping in the QuickBooks integration settings and map the rate to an active tax "
            "rate of this QuickBooks company, then Resync.",
            TAXES,
        ),
        _Entry(
            "tax_rate_invalid",
            "Invalid tax rate",
            "The tax rate on this record does not match the QuickBooks tax rate it is mapped to.",
            "Fix the tax rate in the platform or update Tax mapping in the QuickBooks integration "
            "settings, then Resync.",
            TAXES,
        ),
        _Entry(
            "tax_without_rate",
            "Taxable line without a tax rate",
            "A line is marked taxable but has no tax rate.",
            "Choose a tax rate for the line in the platform (or mark it non-taxable), then Resync.",
            TAXES,
        ),
        _Entry(
            "before_sync_start",
            "Dated before the sync start date",
            "The record is dated before the sync start date, so it is intentionally not synced.",
            "Nothing to do if that is expected. To include it, move the sync start date earlier in the "
            "QuickBooks integration settings, then Resync.",
        ),
        _Entry(
            "currency_unsupported",
            "Currency not enabled in QuickBooks",
            "The record is in a currency the QuickBooks company does not use.",
            "Turn on multicurrency in QuickBooks (Settings > Account and settings > Advanced > Currency) "
            "or record the amount in the company's home currency, then Resync.",
        ),
        _Entry(
            "undeposited_funds_missing",
            "No Undeposited Funds account",
            "QuickBooks has no active Undeposited Funds account to put the payment in.",
            "Choose a deposit account (Bank or Other Current Asset) in the QuickBooks integration "
            "settings, then Resync.",
        ),
        _Entry(
            "deposit_account_missing",
            "Deposit account missing",
            "The deposit account chosen in the sync settings no longer exists or is inactive in QuickBooks.",
            "Reactivate the account in QuickBooks (Accounting > Chart of accounts) or pick another deposit "
            "account in the QuickBooks integration settings, then Resync.",
        ),
        _Entry(
            "deposit_account_type",
            "Wrong type of deposit account",
            "Payments can only be deposited to a Bank or Other Current Asset account.",
            "Pick a Bank or Other Current Asset account as the deposit account in the QuickBooks "
            "integration settings, then Resync.",
        ),
        _Entry(
            "default_service_missing",
            "No default service",
            "The record has lines that need a QuickBooks product/service and no default one is set.",
            "Choose a default service in the QuickBooks integration settings, then Resync.",
        ),
        _Entry(
            "name_invalid_characters",
            "Name contains characters QuickBooks refuses",
            "QuickBooks names cannot contain a colon, a tab or a line break.",
            "Remove those characters from the name in the platform, then Resync.",
        ),
        _Entry(
            "email_too_long",
            "E-mail address too long",
            "The client's e-mail address is longer than QuickBooks accepts (100 characters).",
            "Shorten or correct the e-mail address on the client account, then Resync.",
            ACCOUNTS,
        ),
        _Entry(
            "customer_type_missing",
            "Customer type missing in QuickBooks",
            "The customer type chosen in the sync settings does not exist in QuickBooks.",
            "Create the customer type in QuickBooks (Sales > Customers > Customer types) or choose "
            "another one in the QuickBooks integration settings, then Resync.",
            ACCOUNTS,
        ),
        _Entry(
            "income_account_missing",
            "Income account missing",
            "The service's income account does not exist or is inactive in QuickBooks.",
            "Reactivate the account in QuickBooks (Accounting > Chart of accounts) or choose another "
            "income account for the service, then Resync.",
            SERVICES,
        ),
        _Entry(
            "income_account_type",
            "Wrong type of income account",
            "QuickBooks services must post to an Income account.",
            "Choose an account of type Income for the service, then Resync.",
            SERVICES,
        ),
        _Entry(
            "services_use_sales_item",
            "Services are synced as the Sales item",
            "The settings send every service to QuickBooks' Sales item, so services are not created.",
            "Nothing to do if that is expected; otherwise change the service sync option in the "
            "QuickBooks integration settings.",
            SERVICES,
        ),
        _Entry(
            "service_not_synced",
            "Waiting for a service",
            "A service on this invoice is not in QuickBooks yet.",
            "Check the Services errors and fix that service first; this invoice then syncs on Resync.",
            INVOICES,
        ),
        _Entry(
            "work_type_unmapped",
            "Work type not mapped to a service",
            "The work type on an invoice line has no QuickBooks product/service mapped to it.",
            "Map the work type to a QuickBooks service in the integration settings (or set a default "
            "service), then Resync.",
            SERVICES,
        ),
        _Entry(
            "invoice_not_sent",
            "Invoice not sent yet",
            "Only sent or posted invoices are synced to QuickBooks.",
            "Send or post the invoice in the platform; it syncs automatically.",
            INVOICES,
        ),
        _Entry(
            "invoice_void",
            "Invoice is void",
            "The invoice was voided and cannot be changed in QuickBooks.",
            "Nothing to sync; Skip this error, or create a new invoice.",
            INVOICES,
        ),
        _Entry(
            "negative_line_amount",
            "Negative invoice line",
            "QuickBooks does not accept negative amounts on invoice lines.",
            "Use a discount or issue a credit instead of a negative line, then Resync.",
            INVOICES,
        ),
        _Entry(
            "offline_payment_not_synced",
            "Offline payment not synced",
            "Offline payments are not synced with the current settings.",
            "Change the offline-payment option in the QuickBooks integration settings if they should "
            "be synced, then Resync.",
            PAYMENTS,
        ),
        _Entry(
            "invoice_not_synced",
            "Waiting for the invoice",
            "The payment is applied to an invoice that is not in QuickBooks yet.",
            "Check the Invoices errors and fix that invoice first; the payment then syncs on Resync.",
            PAYMENTS,
        ),
        _Entry(
            "use_credit_memo",
            "Payment from a credit balance",
            "This payment is paid from the client's credit and is recorded as a credit memo.",
            "Nothing to fix in QuickBooks; Resync once the credit is synced.",
            PAYMENTS,
        ),
        _Entry(
            "not_a_credit_payment",
            "Not a credit payment",
            "The payment is not paid from a credit balance, so it cannot be recorded as a credit.",
            "Check the payment's source in the platform, then Resync.",
            PAYMENTS,
        ),
        _Entry(
            "credit_memo_not_synced",
            "Waiting for the credit",
            "The credit this payment uses is not in QuickBooks yet.",
            "Fix the credit's error first (Payments errors); this payment then syncs on Resync.",
            PAYMENTS,
        ),
        _Entry(
            "fee_expense_account_missing",
            "No expense account for processing fees",
            "Processing fees need an expense account, and none is set or it is inactive in QuickBooks.",
            "Choose an expense account for processing fees in the QuickBooks integration settings "
            "(reactivate it under Accounting > Chart of accounts if needed), then Resync.",
            EXPENSES,
        ),
        _Entry(
            "fee_expense_account_type",
            "Wrong type of fee account",
            "Processing fees must post to an Expense account.",
            "Choose an account of type Expense for processing fees in the integration settings, then Resync.",
            EXPENSES,
        ),
        _Entry(
            "payment_not_synced",
            "Waiting for the payment",
            "The payment this record belongs to is not in QuickBooks yet.",
            "Check the Payments errors and fix that payment first; this record then syncs on Resync.",
        ),
        _Entry(
            "manual_payment_failed",
            "Failed to create the manual payment",
            "A payment recorded in QuickBooks could not be added to the platform. The most likely reason "
            "is that its date is outside an open accounting period of the platform.",
            "Open the accounting period that covers the payment date in the platform (Finance > "
            "Accounting periods), then retry the payment.",
            PAYMENTS,
        ),
        # payments recorded in QuickBooks (qbsync.inbound.payments): the Karbon table's cases; the fix is made
        # in QuickBooks, and the saved payment comes back by itself (a new version is checked again)
        _Entry(
            "payment_date_future",
            "Payment Date is in the future",
            "The payment recorded in QuickBooks is dated more than 2 days after today's date (UTC), so it "
            "was not added to the platform.",
            "Correct the payment date in QuickBooks (open the payment, change the date, Save). The saved "
            "payment reaches the platform by itself.",
            PAYMENTS,
        ),
        _Entry(
            "payment_period_closed",
            "Payment date is not in an open accounting period",
            "The payment recorded in QuickBooks is dated on or before the company's closing date: no open "
            "accounting period covers it (the period that contains it is closed), so it was not added to "
            "the platform.",
            "In QuickBooks go to Settings > Account and settings > Advanced > Accounting and move the "
            "closing date before the payment date (or turn off Close the books), or change the payment's "
            "date to a date in an open period and Save. The payment reaches the platform by itself after "
            "its next change in QuickBooks.",
            PAYMENTS,
        ),
        _Entry(
            "payment_invoice_not_synced",
            "Payment for an invoice that is not synced",
            "The payment recorded in QuickBooks is applied to an invoice that was not synced from the "
            "platform (it was created in QuickBooks, or it never synced), so the platform has no invoice to "
            "mark as paid.",
            "In QuickBooks open the payment and apply it to the platform's invoice (the one synced from the "
            "platform), then Save; or record the payment in the platform instead. If the invoice should "
            "come from the platform, fix its error in Invoices first, then edit the payment.",
            PAYMENTS,
        ),
        # what QuickBooks would refuse in any company (qbsync.outbound.mapping.check_record, issue 11):
        # accepted by the event contract, refused on the record before any QuickBooks call
        _Entry(
            "doc_number_too_long",
            "Invoice number too long for QuickBooks",
            "QuickBooks accepts invoice numbers of up to 21 characters, and this company uses its own "
            "invoice numbers, so the platform's number would be sent and refused.",
            "Choose one: fix the invoice number on the platform (21 characters at most) and the corrected "
            "invoice syncs by itself; or choose 'Let QuickBooks number it' on this error: the invoice is "
            "synced without the platform's number (QuickBooks numbers it, or leaves the number blank when "
            "custom transaction numbers are on, for you to fill in in QuickBooks), and so are its later "
            "changes.",
            INVOICES,
        ),
        _Entry(
            "name_too_long",
            "Name too long for QuickBooks",
            "QuickBooks accepts client names of up to 500 characters and service names of up to 100.",
            "Shorten the name on the platform; the corrected record syncs by itself.",
        ),
        _Entry(
            "service_rate_negative",
            "Service with a negative rate",
            "QuickBooks does not accept a negative rate on a product or service.",
            "Set a rate of zero or more on the platform (bill discounts as a discount or a credit); the "
            "corrected service syncs by itself. Or Skip this error if the service should stay out of "
            "QuickBooks.",
            SERVICES,
        ),
        # the initial sync: a line of the platform's snapshot that does not parse or validate
        _Entry(
            vocab.INVALID_IN_SNAPSHOT,
            "The platform's export of this record could not be read",
            "The initial sync read this record from the platform's export (its snapshot), and the record's "
            "line there does not parse or validate, so it was not synced.",
            "Fix the record on the platform (open it and save it again, correcting the fields this error "
            "names): the platform's next event for it syncs it normally and closes this error. Nothing "
            "has to run again in the initial sync.",
        ),
        _Entry(
            "amount_not_positive",
            "Amount is zero or negative",
            "QuickBooks records payments, refunds and fees only with an amount greater than zero.",
            "Correct the amount on the platform (or delete the record); the corrected record syncs by "
            "itself.",
        ),
        _Entry(
            "amount_too_large",
            "Amount too large for QuickBooks",
            "QuickBooks stores amounts with at most 10 digits before the decimal point.",
            "Correct the amount on the platform (it is most likely a typo); the corrected record syncs by "
            "itself.",
        ),
        _Entry(
            "date_out_of_range",
            "Date QuickBooks cannot take",
            "A date of this record is before 1900 or after 2099, most likely a typo on the platform.",
            "Correct the date on the platform; the corrected record syncs by itself.",
        ),
        _Entry(
            "invoice_without_lines",
            "Invoice without lines",
            "QuickBooks needs at least one line on an invoice.",
            "Add a line to the invoice on the platform; the corrected invoice syncs by itself.",
            INVOICES,
        ),
        _Entry(
            "too_many_lines",
            "Too many invoice lines",
            "QuickBooks accepts up to 750 lines on an invoice.",
            "Split the invoice into several invoices on the platform.",
            INVOICES,
        ),
        _Entry(
            "duplicate_line_ids",
            "Invoice lines share an id",
            "Two lines of the invoice carry the same line id, so qbsync cannot tell them apart.",
            "Save the invoice again on the platform; if it persists, contact support with the invoice id.",
            INVOICES,
        ),
        _Entry(
            "line_amount_mismatch",
            "Line amount is not quantity x rate",
            "QuickBooks refuses an invoice line whose amount differs from its quantity times its rate "
            "(QuickBooks code 6070).",
            "Correct the line on the platform; the corrected invoice syncs by itself.",
            INVOICES,
        ),
        _Entry(
            "invoice_totals_mismatch",
            "Invoice totals do not add up",
            "The subtotal is not the sum of the lines, or the total is not the subtotal plus tax, so "
            "QuickBooks would show another total than the platform.",
            "Save the invoice again on the platform; if it persists, contact support with the invoice id.",
            INVOICES,
        ),
        _Entry(
            "negative_tax",
            "Negative tax",
            "QuickBooks does not accept a negative tax amount on an invoice or its lines.",
            "Correct the invoice's tax on the platform; the corrected invoice syncs by itself.",
            INVOICES,
        ),
        _Entry(
            "due_date_before_issue_date",
            "Invoice due before it is issued",
            "The invoice's due date is before its issue date.",
            "Correct the due date on the platform; the corrected invoice syncs by itself.",
            INVOICES,
        ),
        _Entry(
            "payment_without_allocations",
            "Payment not applied to an invoice",
            "The payment is not applied to any invoice, so qbsync cannot tell QuickBooks what it pays.",
            "Apply the payment to its invoice(s) on the platform; the corrected payment syncs by itself.",
            PAYMENTS,
        ),
        _Entry(
            "duplicate_allocation",
            "Payment applied twice to one invoice",
            "The payment lists the same invoice twice in its allocations.",
            "Correct the payment's allocations on the platform; the corrected payment syncs by itself.",
            PAYMENTS,
        ),
        _Entry(
            "allocations_exceed_amount",
            "Payment applied for more than its amount",
            "The amounts the payment applies to its invoices add up to more than the payment itself.",
            "Correct the allocations (or the amount) on the platform; the corrected payment syncs by itself.",
            PAYMENTS,
        ),
    )
}

_AUTHENTICATION_FAILED = _Entry(
    "authentication_failed",
    "QuickBooks sign-in failed (AuthenticationFailed 401)",
    "QuickBooks rejected our sign-in for this company (AuthenticationFailed, 401) even after renewing "
    "it. Usually the connection was revoked or expired. Nothing syncs until it is restored.",
    "The firm owner disconnects QuickBooks in the platform's integration settings, connects it again "
    "signing in as a QuickBooks admin of the same company, and then chooses Retry all.",
    CONNECTION,
)
_AUTHORIZATION_FAILED = _Entry(
    "authorization_failed",
    "No access to the QuickBooks company",
    "QuickBooks denies access to the company: the user who connected it lost admin access, or the "
    "QuickBooks subscription does not include this feature.",
    "Ask a QuickBooks company admin to reconnect QuickBooks in the platform's integration settings, and "
    "check the subscription in QuickBooks (Settings > Account and settings > Billing & subscription).",
    CONNECTION,
)
_NOT_CONNECTED = _Entry(
    "not_connected",
    "QuickBooks is not connected",
    "The firm has no active QuickBooks connection (never connected, disconnected, or switched to another "
    "company).",
    "The firm owner connects QuickBooks in the platform's integration settings, then chooses Retry all.",
    CONNECTION,
)

#: Fault rules in order, first match wins (QBO.md §4.2).
FAULTS: tuple[FaultRule, ...] = (
    FaultRule("2020", _CUSTOMER_MISSING, element=_re(r"CustomerRef")),
    FaultRule("2020", _CUSTOMER_MISSING, detail=_re(r"\bCustomerRef\b")),
    FaultRule(
        "2020",
        _Entry(
            "required_field_missing",
            "A required field is missing",
            "QuickBooks needs a value that this record does not have.",
            "Open the record in the platform, fill in every required field (client, date, lines, "
            "amount), then Resync.",
        ),
    ),
    FaultRule("2500", _CUSTOMER_MISSING, element=_re(r"CustomerRef")),
    FaultRule("2500", _TAX_RATE_UNMAPPED, element=_re(r"TaxCode|TaxRate")),
    FaultRule(
        "2500",
        _Entry(
            "service_missing",
            "Service not found in QuickBooks",
            "A product/service used on this record no longer exists in QuickBooks.",
            "Resync the service from the Services errors (or map the work type to an existing "
            "QuickBooks service), then Resync this record.",
        ),
        element=_re(r"ItemRef"),
    ),
    FaultRule(
        "2500",
        _Entry(
            "account_missing",
            "Account not found in QuickBooks",
            "An account used on this record (deposit, income or expense) no longer exists in QuickBooks.",
            "Pick an existing account in the QuickBooks integration settings (or restore it in "
            "QuickBooks under Accounting > Chart of accounts), then Resync.",
        ),
        element=_re(r"AccountRef"),
    ),
    FaultRule(
        "2500",
        _Entry(
            "reference_missing",
            "Linked entry not found in QuickBooks",
            "This record points to a QuickBooks entry (customer, service, account or tax) that does not "
            "exist any more.",
            "Resync the linked records first (see the other errors of this client), then Resync this one.",
        ),
    ),
    FaultRule(
        "6140",
        _Entry(
            "duplicate_document_number",
            "Duplicate Document Number",
            "QuickBooks already has a transaction of this type with exactly the same number.",
            "Change the number of the existing transaction in QuickBooks (open it, edit the number, Save) "
            "or renumber the record in the platform, so the two differ. Then Resync.",
        ),
    ),
    FaultRule("6200", _BOOKS_CLOSED),
    FaultRule("6210", _BOOKS_CLOSED),
    FaultRule("6100", _TAX_RATE_UNMAPPED),
    FaultRule("6000", _SEVERAL_TAX_RATES_US, detail=_re(r"(multiple|more than one|several).{0,40}tax")),
    FaultRule("6000", _TAX_RATE_UNMAPPED, detail=_re(r"\btax")),
    FaultRule("6000", _OVERPAYMENT, detail=_re(r"overpa|exceed.{0,60}(balance|due|open)")),
    FaultRule(
        "6000",
        _CUSTOMER_MISMATCH,
        detail=_re(r"customer.{0,80}(differ|does not match|doesn't match|same|mismatch)"),
    ),
    FaultRule("6000", _BOOKS_CLOSED, detail=_re(r"clos(ed|ing) (period|date|books)")),
    FaultRule(
        "6000",
        _Entry(
            "business_rule",
            "QuickBooks refused the transaction",
            "QuickBooks refused this record because it breaks one of its accounting rules.",
            "Compare the record in the platform with QuickBooks (customer, dates, amounts, linked "
            "invoices), correct what differs, then Resync. If it keeps failing, contact support with the "
            "QuickBooks code.",
        ),
    ),
    FaultRule("6250", _CUSTOMER_MISSING),
    FaultRule("610", _ENTRY_DELETED),
    FaultRule("5010", _ENTRY_EDITED),
    FaultRule(
        "6540",
        _Entry(
            "deposited_transaction",
            "Payment already deposited in QuickBooks",
            "The payment is already part of a bank deposit in QuickBooks, so QuickBooks will not change it.",
            "In QuickBooks remove the payment from the deposit (open the deposit, untick the payment, "
            "Save), then Resync; or Skip this error and keep the QuickBooks version.",
        ),
    ),
    FaultRule(
        "6240",
        _Entry(
            "duplicate_name",
            "Name already used in QuickBooks",
            "QuickBooks already has a customer, vendor, employee or product with this name (possibly "
            "inactive). Names must be unique across customers, vendors and employees.",
            "For a client account: map it to the existing QuickBooks customer, or rename one of them. "
            "For a service: rename it or reactivate and link the existing one. Then Resync.",
        ),
    ),
    FaultRule(
        "6070",
        _Entry(
            "amount_mismatch",
            "Line amount does not add up",
            "A line amount is not equal to quantity times rate, as QuickBooks requires.",
            "Check the quantities and rates of the lines in the platform, then Resync.",
        ),
    ),
    FaultRule(
        "2050",
        _Entry(
            "value_too_long",
            "A value is too long for QuickBooks",
            "A field (such as the document number, max 21 characters, or a name) is longer than "
            "QuickBooks allows.",
            "Shorten the number or name in the platform, then Resync.",
        ),
    ),
    FaultRule(
        "2290",
        _Entry(
            "negative_line_amount",
            "Negative invoice line",
            "QuickBooks does not accept negative amounts on transaction lines.",
            "Use a discount or issue a credit instead of a negative line, then Resync.",
        ),
    ),
    FaultRule(
        "2210",
        _Entry(
            "invalid_email",
            "Invalid e-mail address",
            "The e-mail address is not in a format QuickBooks accepts.",
            "Correct the e-mail address on the client account or contact, then Resync.",
        ),
    ),
    FaultRule(
        "6420",
        _Entry(
            "email_required",
            "E-mail address required",
            "The customer is set to receive documents by e-mail but has no e-mail address.",
            "Add an e-mail address to the client account (or change the delivery method in QuickBooks), "
            "then Resync.",
        ),
    ),
    FaultRule(
        "6080",
        _Entry(
            "name_missing",
            "Name missing",
            "QuickBooks needs a name for this customer or vendor.",
            "Give the client account or contact a name in the platform, then Resync.",
        ),
    ),
    FaultRule(
        "6220",
        _Entry(
            "has_open_balance",
            "Client still has an open balance",
            "QuickBooks cannot make inactive a customer who still owes money.",
            "Settle or write off the open balance in QuickBooks, then Resync.",
        ),
    ),
    FaultRule(
        "620",
        _Entry(
            "cannot_link",
            "Transaction cannot be linked",
            "The payment or credit is linked to a transaction QuickBooks cannot link it to (for example "
            "an invoice that is void, deleted or of another customer).",
            "Check which invoices the payment is applied to in the platform, correct them, then Resync.",
        ),
    ),
    FaultRule(
        "6190",
        _Entry(
            "company_inactive",
            "QuickBooks subscription inactive",
            "The QuickBooks company's subscription has ended or has a billing problem, so it accepts no "
            "changes.",
            "Renew or fix the subscription in QuickBooks (Settings > Account and settings > Billing & "
            "subscription), then choose Retry all.",
            CONNECTION,
        ),
    ),
    FaultRule(
        "6180",
        _Entry(
            "sub_level_limit",
            "Too many levels of sub-customers",
            "QuickBooks allows sub-customers at most 5 levels deep.",
            "Flatten the client hierarchy in QuickBooks or in the platform, then Resync.",
        ),
    ),
)

#: Error classes without a QBO code of their own (checked after the reason codes and faults).
CLASSES: tuple[tuple[type[QbsyncError], _Entry], ...] = (
    (
        Throttled,
        _Entry(
            "throttled",
            "QuickBooks asked us to slow down",
            "QuickBooks limits how many requests an app can make per minute; this record will be retried "
            "automatically.",
            "Nothing to do: the sync retries on its own. If it stays, choose Resync in a few minutes.",
        ),
    ),
    (
        UncertainOutcome,
        _Entry(
            "uncertain_outcome",
            "QuickBooks did not confirm the change",
            "QuickBooks did not answer in time, so we do not know yet whether the change was saved. "
            "We check before trying again, so nothing is duplicated.",
            "Nothing to do: the sync checks QuickBooks and retries on its own. Choose Resync if the "
            "error stays.",
        ),
    ),
    (
        ServiceUnavailable,
        _Entry(
            "qbo_unavailable",
            "QuickBooks is temporarily unavailable",
            "QuickBooks did not respond or reported a temporary problem (or is under maintenance).",
            "Nothing to do: the sync retries on its own. Choose Resync later if the error stays.",
        ),
    ),
    (
        RetryableError,
        _Entry(
            "temporary_failure",
            "Temporary problem",
            "The sync hit a temporary problem and will try again.",
            "Nothing to do: the sync retries on its own. Choose Resync later if the error stays.",
        ),
    ),
    (
        ConfigurationError,
        _Entry(
            "configuration_error",
            "Integration misconfigured",
            "The QuickBooks integration is not configured correctly on our side.",
            "Contact support; nothing in QuickBooks needs to change.",
            CONNECTION,
        ),
    ),
)

_AUTH_CODES = frozenset({"3200", "100", "110"})
_AUTHZ_CODES = frozenset({"3100", "120"})


def category_for_entity(entity_type: str | None) -> str | None:
    """Default error-center category of a platform entity type or QBO entity name (None if unknown).

    ``client_account``/``ClientAccount``/``Customer`` → Accounts, ``service``/``Item`` → Services,
    ``invoice`` → Invoices, ``payment``/``credit_memo`` → Payments, ``refund``/``RefundReceipt`` → Refunds,
    ``fee``/``Purchase`` → Expenses, ``contact`` → Contacts.
    """
    if not entity_type:
        return None
    return _ENTITY_CATEGORY.get(entity_type.replace("_", "").replace("-", "").lower())


def _reason_code(error: QbsyncError) -> str | None:
    code = getattr(error, "reason_code", None) or error.extra.get("reason_code")
    return code if isinstance(code, str) and code else None


def _reconnect_entry(error: QbsyncError) -> _Entry:
    code = error.qbo_code
    if code in _AUTH_CODES or error.extra.get("qbo_status") == 401:
        return _AUTHENTICATION_FAILED
    if code in _AUTHZ_CODES:
        return _AUTHORIZATION_FAILED
    if error.extra.get("status") == "disconnected":
        return _NOT_CONNECTED
    # invalid_grant, a refresh that failed, a connection marked "needs reconnect": the grant is gone,
    # which is what disabling the app on the QuickBooks side produces.
    return _SYNC_DISABLED


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _fault_entry(error: QbsyncError) -> _Entry | None:
    code = error.qbo_code
    if not code:
        return None
    element = _text(error.extra.get("element"))
    # QBO's Message is in str(error); its Detail only in qbo_detail. Both are matched, never copied.
    detail = f"{_text(error.qbo_detail)} {error.message}"
    for rule in FAULTS:
        if rule.matches(code, element, detail):
            return rule.entry
    return None


def _generic(error: QbsyncError) -> _Entry:
    if error.qbo_code:
        return _Entry(
            f"qbo_{error.qbo_code}",
            f"QuickBooks refused the change (code {error.qbo_code})",
            f"QuickBooks rejected this record with code {error.qbo_code}; the data sent does not meet one "
            "of its rules.",
            _GENERIC_FIX,
        )
    return _Entry(
        error.code or "internal_error",
        "The record could not be synced",
        "The record could not be synced to QuickBooks.",
        _GENERIC_FIX,
    )


def explain(error: QbsyncError, *, entity_type: str | None = None) -> Explanation:
    """The error-center explanation of ``error`` (see the module doc for the order of the rules).

    ``entity_type`` (the record's platform entity type, e.g. ``invoice``) gives the category of entries
    that do not fix one themselves; without it ``error.entity`` is used, and ``Accounts`` when neither is
    known. The repository always passes the entity type it records.

    Raises:
        TypeError: ``error`` is not a :class:`~qbsync.errors.QbsyncError`.
    """
    if not isinstance(error, QbsyncError):
        raise TypeError(f"explain needs a QbsyncError, got {type(error).__name__}")
    own_category = getattr(error, "category", None)
    own_explanation = getattr(error, "explanation", None)
    reason = _reason_code(error)
    entry: _Entry | None = REASONS.get(reason) if reason else None
    if reason and isinstance(own_category, str) and isinstance(own_explanation, str) and own_explanation:
        # A MappingError: its category and its specific explanation win; the table adds title and fix.
        return Explanation(
            category=own_category,
            code=reason,
            title=entry.title if entry else "The record cannot be synced yet",
            explanation=own_explanation,
            fix=entry.fix if entry else own_explanation,
        )
    if entry is None and isinstance(error, ReconnectRequired):
        entry = _reconnect_entry(error)
    if entry is None:
        entry = _fault_entry(error)
    if entry is None:
        entry = next((e for cls, e in CLASSES if isinstance(error, cls)), None)
    if entry is None:
        entry = _generic(error)
    return Explanation(
        category=_category(entry, error, entity_type),
        code=entry.code,
        title=entry.title,
        explanation=entry.explanation,
        fix=entry.fix,
    )


def _category(entry: _Entry, error: QbsyncError, entity_type: str | None) -> str:
    if entry.category:
        return entry.category
    own = getattr(error, "category", None)
    if isinstance(own, str) and own in vocab.ERROR_CATEGORIES:
        return own
    return category_for_entity(entity_type) or category_for_entity(error.entity) or ACCOUNTS
