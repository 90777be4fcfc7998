"""An unmodified third-party client against the simulator: intuit-oauth 1.2.6 + python-quickbooks 0.9.12.

Only their endpoints are pointed at the simulator, through their own configuration surface:
- ``intuitlib.AuthClient(environment=<discovery URL>)``: intuitlib treats any environment other than
  sandbox/production as the URL of the OpenID discovery document and reads every endpoint from it;
- ``QuickBooks.api_url_v3``: the API base the client builds every ``/company/{realm}/...`` URL from;
- ``OAUTHLIB_INSECURE_TRANSPORT=1``: oauthlib's documented switch for plain-HTTP test servers (the
  simulator listens on loopback HTTP).
No library code is patched; the tests assert what the libraries return.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import ObjectNotFoundException, QuickbooksException
from quickbooks.objects.base import EmailAddress, Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine


@pytest.fixture
def auth(qbo_sim, qbo_app, qbo_company, monkeypatch) -> AuthClient:
    """Authorize like a browser (consent is automatic) and exchange the code with intuitlib."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    qbo_sim.control.set_consent(realm_id=qbo_company, client_id=qbo_app.client_id)
    client = AuthClient(
        qbo_app.client_id,
        qbo_app.client_secret,
        qbo_app.redirect_uri,
        environment=f"{qbo_sim.url}/.well-known/openid_configuration",
    )
    assert client.token_endpoint.startswith(qbo_sim.url)
    assert client.auth_endpoint.startswith(qbo_sim.url)
    state = secrets.token_urlsafe(16)
    url = client.get_authorization_url([Scopes.ACCOUNTING, Scopes.OPENID, Scopes.EMAIL], state_token=state)
    redirect = requests.get(url, allow_redirects=False, timeout=10)
    assert redirect.status_code in (302, 303), redirect.text
    location = redirect.headers["location"]
    assert location.startswith(qbo_app.redirect_uri)
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params["state"] == state
    assert params["realmId"] == qbo_company
    client.get_bearer_token(params["code"], realm_id=params["realmId"])
    assert client.access_token and client.refresh_token
    assert client.expires_in == 3600
    assert client.realm_id == qbo_company
    return client


@pytest.fixture
def qb(auth: AuthClient, qbo_sim, qbo_company) -> QuickBooks:
    client = QuickBooks(
        auth_client=auth, refresh_token=auth.refresh_token, company_id=qbo_company, minorversion=75
    )
    client.api_url_v3 = f"{qbo_sim.url}/v3"
    return client


def _item(qb: QuickBooks, seed: dict, name: str, price: float) -> Item:
    item = Item()
    item.Name = name
    item.Type = "Service"
    item.UnitPrice = price
    item.IncomeAccountRef = Ref()
    item.IncomeAccountRef.value = seed["accounts"]["Services"]
    return item.save(qb=qb)


def _customer(qb: QuickBooks, name: str) -> Customer:
    customer = Customer()
    customer.DisplayName = name
    customer.CompanyName = name
    customer.PrimaryEmailAddr = EmailAddress()
    customer.PrimaryEmailAddr.Address = "billing@example.com"
    return customer.save(qb=qb)


def _invoice(qb: QuickBooks, customer: Customer, item: Item, amounts: list[float]) -> Invoice:
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    for amount in amounts:
        line = SalesItemLine()
        line.Amount = amount
        line.SalesItemLineDetail = SalesItemLineDetail()
        line.SalesItemLineDetail.ItemRef = item.to_ref()
        line.SalesItemLineDetail.Qty = 1
        line.SalesItemLineDetail.UnitPrice = amount
        invoice.Line.append(line)
    return invoice.save(qb=qb)


def test_oauth_refresh_rotates_and_revoke_kills_the_grant(auth: AuthClient, qbo_sim, qbo_company) -> None:
    first_refresh = auth.refresh_token
    auth.refresh()
    assert auth.refresh_token and auth.refresh_token != first_refresh
    with pytest.raises(AuthClientError) as err:  # the used refresh token is dead (invalid_grant)
        auth.refresh(refresh_token=first_refresh)
    assert err.value.status_code == 400
    assert b"invalid_grant" in err.value.content
    info = auth.get_user_info()
    assert info.status_code == 200 and "sub" in info.json()
    assert auth.revoke(token=auth.refresh_token) is True
    with pytest.raises(AuthClientError):
        auth.refresh()


def test_customer_crud_query_and_stale_synctoken(qb: QuickBooks) -> None:
    created = _customer(qb, "O'Brien CPA")
    assert created.Id and created.SyncToken == "0"
    fetched = Customer.get(created.Id, qb=qb)
    assert fetched.DisplayName == "O'Brien CPA"
    assert fetched.PrimaryEmailAddr.Address == "billing@example.com"

    fetched.CompanyName = "O'Brien & Sons CPA"
    updated = fetched.save(qb=qb)
    assert updated.SyncToken == "1"
    assert Customer.get(created.Id, qb=qb).CompanyName == "O'Brien & Sons CPA"

    # python-quickbooks escapes the quote with a backslash (build_where_clause)
    found = Customer.filter(DisplayName="O'Brien CPA", qb=qb)
    assert [c.Id for c in found] == [created.Id]
    assert Customer.count("DisplayName = 'O\\'Brien CPA'", qb=qb) == 1

    with pytest.raises(QuickbooksException) as err:  # fetched still carries SyncToken "0"
        fetched.SyncToken = "0"
        fetched.save(qb=qb)
    assert err.value.error_code == 5010

    latest = Customer.get(created.Id, qb=qb)
    latest.Active = False  # name lists are inactivated, never deleted
    latest.save(qb=qb)
    assert Customer.filter(DisplayName="O'Brien CPA", qb=qb) == []
    everyone = Customer.where("Active IN (true, false) AND DisplayName = 'O\\'Brien CPA'", qb=qb)
    assert [c.Active for c in everyone] == [False]

    with pytest.raises(QuickbooksException) as dup:
        _customer(qb, "o'brien cpa")  # the inactive name still blocks (6240), case-insensitively
    assert dup.value.error_code == 6240


def test_item_crud_and_listing(qb: QuickBooks, seed: dict) -> None:
    item = _item(qb, seed, "Bookkeeping", 150)
    assert item.Type == "Service" and float(item.UnitPrice) == 150
    item.UnitPrice = 175
    saved = item.save(qb=qb)
    assert saved.SyncToken == "1"
    assert float(Item.get(item.Id, qb=qb).UnitPrice) == 175
    names = [i.Name for i in Item.all(order_by="Name", qb=qb)]  # SELECT *, Sku ... ORDER BY Name
    assert "Bookkeeping" in names and "Sales" in names
    assert names == sorted(names, key=str.casefold)
    page = Item.where("", order_by="Name", start_position=1, max_results=1, qb=qb)
    assert [i.Name for i in page] == [names[0]]


def test_invoice_and_payment_lifecycle(qb: QuickBooks, seed: dict) -> None:
    customer = _customer(qb, "Rivera & Sons")
    item = _item(qb, seed, "Tax return", 100)
    invoice = _invoice(qb, customer, item, [100, 50])
    assert float(invoice.TotalAmt) == 150 and float(invoice.Balance) == 150
    assert invoice.CustomerRef.value == customer.Id

    invoice = Invoice.get(invoice.Id, qb=qb)
    invoice.PrivateNote = "checked"
    invoice = invoice.save(qb=qb)
    assert invoice.SyncToken == "1"

    payment = Payment()
    payment.CustomerRef = customer.to_ref()
    payment.TotalAmt = 60
    line = PaymentLine()
    line.Amount = 60
    line.LinkedTxn.append(invoice.to_linked_txn())
    payment.Line.append(line)
    payment.PaymentMethodRef = Ref()
    payment.PaymentMethodRef.value = seed["methods"]["Credit Card"]
    payment = payment.save(qb=qb)
    assert float(payment.TotalAmt) == 60
    assert float(Invoice.get(invoice.Id, qb=qb).Balance) == 90

    read_back = Payment.get(payment.Id, qb=qb)
    assert read_back.Line[0].LinkedTxn[0].TxnId == invoice.Id

    read_back.delete(qb=qb)
    assert float(Invoice.get(invoice.Id, qb=qb).Balance) == 150
    with pytest.raises(ObjectNotFoundException):
        Payment.get(payment.Id, qb=qb)

    matching = Invoice.where(f"CustomerRef = '{customer.Id}' AND Balance > '0'", qb=qb)
    assert [i.Id for i in matching] == [invoice.Id]

    Invoice.get(invoice.Id, qb=qb).delete(qb=qb)
    with pytest.raises(ObjectNotFoundException) as gone:
        Invoice.get(invoice.Id, qb=qb)
    assert gone.value.error_code == 610


def test_query_errors_surface_as_validation_faults(qb: QuickBooks) -> None:
    with pytest.raises(QuickbooksException) as err:
        Customer.where("DisplayName = 'a' OR DisplayName = 'b'", qb=qb)
    assert err.value.error_code == 4000
    with pytest.raises(QuickbooksException) as err:
        Invoice.where("PrivateNote = 'x'", qb=qb)
    assert err.value.error_code == 4001


def test_batch_create_with_a_fault(qb: QuickBooks) -> None:
    _customer(qb, "Existing Client")
    fresh = [Customer(), Customer(), Customer()]
    fresh[0].DisplayName = "Batch One"
    fresh[1].DisplayName = "Batch Two"
    fresh[2].DisplayName = "Existing Client"  # duplicate name: a per-item Fault, not a failed batch
    result = batch_create(fresh, qb=qb)
    assert sorted(c.DisplayName for c in result.successes) == ["Batch One", "Batch Two"]
    assert all(c.Id for c in result.successes)
    assert len(result.faults) == 1
    assert result.faults[0].Error[0].code == "6240"
    assert Customer.count("DisplayName LIKE 'Batch%'", qb=qb) == 2


def test_change_data_capture(qb: QuickBooks, seed: dict, qbo_sim) -> None:
    # python-quickbooks formats a datetime without an offset; pass an explicit ISO string instead,
    # taken from the simulator's clock (other tests may have advanced it).
    since = datetime.fromtimestamp(qbo_sim.control.clock()["epoch"] - 5, UTC).isoformat(timespec="seconds")
    customer = _customer(qb, "CDC Client")
    item = _item(qb, seed, "CDC Service", 10)
    invoice = _invoice(qb, customer, item, [10])
    cdc = change_data_capture([Customer, Invoice], since, qb=qb)
    assert [c.Id for c in cdc.Customer] == [customer.Id]
    assert [i.Id for i in cdc.Invoice] == [invoice.Id]
    assert cdc.Customer[0].DisplayName == "CDC Client"
