"""``make demo``: the whole stack on this machine, a sample firm connected to QuickBooks end to end.

Plays the two outside parties through their real interfaces only:
- the platform backend: signs admin JWTs with the deployed ``AdminJwtSecret`` and calls the admin API
  over HTTP; subscribes to qbsync's events on the bus (its own rule + queue, as a real subscriber would);
- the firm owner's browser: follows the Intuit authorize redirect to our ``/oauth/callback``, which sends it
  back to the platform's return URL with a one-time handle; the platform then completes the connection with
  the owner's JWT (``POST /connection/complete``).

Everything else is the product as deployed: API Gateway (local), the Lambda authorizer, the OAuth
handler, DynamoDB, KMS, Secrets Manager and EventBridge on moto, QuickBooks Online as the simulator.
The last step syncs the issue-4 sample firm (``local.sample_firm``: 55 accounts, 21 services, 301 invoices,
payments, refunds, fees, 4 deliberate errors, 1 malformed event) with the simulator's real rate limits, and
the summary shows what landed in QuickBooks, the statuses, where each issue-11 case ended (the
negative-rate service's error, the records skipped behind failed ones, the malformed event in the DLQ) and
the error log. Then the firm owner fixes those errors through the admin API (maps the vendor-named account to
the bookkeeper's customer, maps the tax rate in the settings and resyncs the Taxes category, skips the colon
account's error) and the platform corrects the service's rate, and the demo checks again that everything
landed exactly once, to the cent. Then the accountant changes three of its synced records in QuickBooks with
their webhooks lost, the scheduled resync's drift report finds each change, the owner fixes them through the
admin API and the next report has none of them (``local.demo_reconcile``). Last, a second firm that already
has history connects (``local.demo_history``, issue 13 item 5): the platform answers qbsync's "Snapshot
Requested" with the firm's history, the owner reads the pre-flight warnings and the dry-run plan in
``GET /initial-sync`` and approves it, the initial sync runs on the local stack's Step Functions with a
progress bar per phase, and its summary is checked against the simulator (each money record type reconciled
with the snapshot manifest to the cent, no qbsync marker on two objects). ``--sample-scale 0.2`` runs a
smaller firm (the e2e test runs 0.15); ``0`` leaves both sample-firm steps out, and the history step too
unless ``--history-scale`` (default: the sample scale) says otherwise.
Prints progress while it runs and a summary at the end; exits non-zero if any step failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
import requests

from local import sample_firm
from local.demo_drift import DRIFT_CODES, invoice_edited_in_quickbooks
from local.demo_drift import TITLE as DRIFT_TITLE
from local.demo_history import TITLE as HISTORY_TITLE
from local.demo_history import HistoryDemoFailure, HistoryReport, history_firm_for, initial_sync_of_history
from local.demo_inbound import InboundDemoFailure, payments_from_quickbooks
from local.demo_reconcile import TITLE as RECONCILE_TITLE
from local.demo_reconcile import ReconcileDemoFailure, reconcile_sample_firm
from local.qbo_sim.client import SimControl, SimControlError
from local.qbo_sim.config import SimConfig
from local.qbo_sim.server import SimulatorServer
from local.sample_firm import (
    N_ACCOUNTS,
    N_INVOICES,
    UNMAPPED_TAX_RATE,
    SampleFirm,
    SampleFirmError,
    SampleReport,
    generate,
)
from local.stack import LocalStack
from local.stack.provision import clients

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRM_ID = "firm-harbor-cpa"
OTHER_FIRM_ID = "firm-other"
#: the sample-firm step gives up waiting after this long (the full firm: ~5 min measured on this 2-core
#: machine, docs/benchmarks.md; a fifth of it: ~1 min)
SAMPLE_TIMEOUT_SECONDS = 1200.0
#: OutboundQueue pollers. Lambda may run 5 batches at once (the template's MaximumConcurrency); here moto
#: runs in this process, and more pollers only add out-of-order arrivals (blocked, re-enqueued records):
#: 1 poller synced the full sample firm in 308 s, 3 pollers took longer (docs/benchmarks.md).
POLLERS = 1
#: how long the fix step waits for each released or resynced record
FIX_TIMEOUT_SECONDS = 120.0


class DemoFailure(Exception):
    """A step's expectation did not hold."""


@dataclass
class Step:
    title: str
    ok: bool = False
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Demo:
    stack: LocalStack
    sim: SimControl
    realm_a: str
    realm_b: str
    jwt_key: str
    steps: list[Step] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)
    events_queue_url: str = ""
    statuses: Counter[tuple[Any, Any, Any]] = field(default_factory=Counter)
    sample_report: SampleReport | None = None
    #: the sample firm checked again after the errors were fixed through the admin API
    fixed_report: SampleReport | None = None
    #: QBO API requests of the connected company and how many QBO answered 429
    sample_requests: tuple[int, int] = (0, 0)
    #: the initial sync of the firm with history (``local.demo_history``)
    history_report: HistoryReport | None = None

    # ---- the platform side --------------------------------------------------------------------------
    def token(self, role: str = "owner", firm_id: str = FIRM_ID, user: str = "u-owner") -> str:
        claims = {
            "sub": user,
            "firm_id": firm_id,
            "role": role,
            "iss": "platform",
            "aud": "qbsync-admin",
            "exp": int(time.time()) + 900,
        }
        return jwt.encode(claims, self.jwt_key, algorithm="HS256")

    def api(
        self, method: str, path: str, *, role: str = "owner", firm_id: str = FIRM_ID, body: Any = None
    ) -> requests.Response:
        """The admin API over HTTP with a JWT of that role and firm."""
        headers = {"Authorization": f"Bearer {self.token(role, firm_id, user=f'u-{role}')}"}
        return self.http.request(method, self.stack.api_url + path, headers=headers, json=body, timeout=60)

    def expect(self, response: requests.Response, status: int) -> Any:
        if response.status_code != status:
            raise DemoFailure(
                f"{response.request.method} {urlparse(response.url).path} answered "
                f"{response.status_code} (expected {status}): {response.text[:300]}"
            )
        ctype = response.headers.get("content-type", "")
        return response.json() if "json" in ctype else response.text

    def browser_consent(self, firm_id: str = FIRM_ID) -> dict[str, Any]:
        """The owner asks for a connect URL and consents in 'QuickBooks'; the callback sends the browser back
        to the platform with a one-time handle, and the platform completes the connection with the owner's
        JWT (``POST /connection/complete``). Returns what completing did (``change``, ``message``, ...)."""
        url = self.expect(self.api("POST", "/connection/connect-url", firm_id=firm_id, body={}), 200)["url"]
        authorize = self.http.get(url, allow_redirects=False, timeout=30)
        if authorize.status_code != 302:
            raise DemoFailure(f"authorize answered {authorize.status_code}: {authorize.text[:200]}")
        callback = self.http.get(authorize.headers["Location"], allow_redirects=False, timeout=60)
        if callback.status_code != 303:
            raise DemoFailure(f"the callback answered {callback.status_code}: {callback.text[:300]}")
        handle = parse_qs(urlparse(callback.headers["Location"]).query)["handle"][0]
        completed = self.api("POST", "/connection/complete", firm_id=firm_id, body={"handle": handle})
        return dict(self.expect(completed, 200))

    def put_platform_event(self, event: dict[str, Any]) -> None:
        """The platform's side of the contract: one event on qbsync's bus (docs/events/README.md)."""
        resources = self.stack.resources
        assert resources is not None
        answer = clients(self.stack.endpoint_url, self.stack.region)["events"].put_events(
            Entries=[
                {
                    "EventBusName": resources.ref("EventBus"),
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                }
            ]
        )
        if answer["FailedEntryCount"]:
            raise DemoFailure(f"PutEvents failed: {answer['Entries']}")

    def _poll_inbox(self, wait_seconds: int) -> int:
        """Receive qbsync's status events from the platform's inbox; returns how many arrived."""
        sqs = clients(self.stack.endpoint_url, self.stack.region)["sqs"]
        got = sqs.receive_message(
            QueueUrl=self.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        for message in got:
            detail = json.loads(message["Body"])["detail"]
            sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"])
            key = (detail.get("entity_type"), detail.get("platform_id"), detail.get("status"))
            self.statuses[key] += 1
        return len(got)

    def wait_for_status(
        self, entity_type: str, platform_id: str, status: str, *, at_least: int = 1, timeout: float = 90
    ) -> None:
        """Long-poll the platform's inbox until qbsync has announced that status for that record
        ``at_least`` times (entity types as in the event contract: "Payment", "Invoice", ...)."""
        deadline = time.monotonic() + timeout
        while self.statuses[(entity_type, platform_id, status)] < at_least:
            if time.monotonic() >= deadline:
                raise DemoFailure(
                    f"no {status!r} status for {entity_type} {platform_id} within {timeout:.0f}s"
                )
            self._poll_inbox(wait_seconds=2)

    def settle(self, quiet_seconds: int = 3, timeout: float = 60) -> None:
        """Wait until the inbox stays empty for ``quiet_seconds`` (all queued work has finished)."""
        deadline = time.monotonic() + timeout
        while self._poll_inbox(wait_seconds=quiet_seconds) and time.monotonic() < deadline:
            pass

    def received_events(self) -> list[dict[str, Any]]:
        sqs = clients(self.stack.endpoint_url, self.stack.region)["sqs"]
        out: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=self.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not got:
                return out
            for message in got:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"])

    # ---- running steps ------------------------------------------------------------------------------
    def step(self, title: str, action: Callable[[], str]) -> None:
        number = len(self.steps) + 1
        print(f"[{number:2d}] {title} ...", flush=True)
        step = Step(title)
        started = time.perf_counter()
        try:
            step.detail = action()
            step.ok = True
        except (DemoFailure, requests.RequestException, KeyError) as exc:
            step.detail = f"FAILED: {exc}"
        step.seconds = time.perf_counter() - started
        self.steps.append(step)
        mark = "ok" if step.ok else "FAILED"
        print(f"     {mark} ({step.seconds:.2f}s) {step.detail}", flush=True)


def subscribe_to_qbsync_events(stack: LocalStack) -> str:
    """The platform's subscription: a rule on qbsync's bus (source qbsync) into a queue it owns."""
    c = clients(stack.endpoint_url, stack.region)
    resources = stack.resources
    assert resources is not None
    bus = resources.physical["EventBus"]
    queue_url = c["sqs"].create_queue(QueueName="platform-inbox-demo")["QueueUrl"]
    arn = c["sqs"].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    c["events"].put_rule(
        Name="platform-subscription-demo", EventBusName=bus, EventPattern=json.dumps({"source": ["qbsync"]})
    )
    c["events"].put_targets(
        Rule="platform-subscription-demo", EventBusName=bus, Targets=[{"Id": "inbox", "Arn": arn}]
    )
    return queue_url


def run(
    demo: Demo,
    sample_scale: float = 1.0,
    sample_timeout: float = SAMPLE_TIMEOUT_SECONDS,
    history_scale: float | None = None,
) -> None:
    sim, realm_a, realm_b = demo.sim, demo.realm_a, demo.realm_b

    def connect() -> str:
        outcome = demo.browser_consent()
        if outcome["change"] != "connected":
            raise DemoFailure(f"completing the connection: {outcome}")
        view = demo.expect(demo.api("GET", "/connection"), 200)
        if view["status"] != "connected" or view["realm_id"] != realm_a:
            raise DemoFailure(f"status {view}")
        return f"connected to {view['company_name']!r} (realm {view['realm_id']})"

    def check_before_connect() -> str:
        body = demo.expect(demo.api("GET", "/connection"), 404)
        return f"404 {body.get('message')}"

    def refresh() -> str:
        def token_calls() -> int:
            return sum(1 for r in sim.requests(limit=1000) if "tokens/bearer" in r.get("path", ""))

        before = token_calls()
        sim.expire_tokens("access", realm_id=realm_a)  # Intuit now rejects the stored access token
        result = demo.expect(demo.api("POST", "/connection/check"), 200)
        refreshes = token_calls() - before
        if refreshes != 1:
            raise DemoFailure(f"expected exactly one refresh at Intuit, saw {refreshes}")
        view = demo.expect(demo.api("GET", "/connection"), 200)
        return (
            f"401 from QuickBooks -> exactly one refresh -> CompanyInfo ok ({result['company_name']}); "
            f"new access token valid until {view['access_expires_at']}"
        )

    def keepalive() -> str:
        schedule = demo.stack.schedule_id_for("TokenKeepAliveFunction")
        results = demo.stack.fire_schedule(schedule)
        payloads = [getattr(r, "payload", r) for r in results]
        return f"schedule {schedule} fired; keep-alive report {payloads}"

    def guards() -> str:
        staff = demo.api("POST", "/connection/disconnect", role="staff")
        demo.expect(staff, 403)
        other = demo.api("GET", "/connection", firm_id=OTHER_FIRM_ID)
        demo.expect(other, 404)
        anonymous = demo.http.get(demo.stack.api_url + "/connection", timeout=30)
        demo.expect(anonymous, 401)
        return "staff disconnect -> 403; another firm -> 404; no token -> 401"

    def disconnect() -> str:
        view = demo.expect(demo.api("POST", "/connection/disconnect"), 200)
        revokes = [r for r in sim.requests(limit=50) if "revoke" in r.get("path", "")]
        if view["status"] != "disconnected" or not revokes:
            raise DemoFailure(f"status {view['status']}, revoke calls {len(revokes)}")
        return f"status {view['status']}; tokens revoked at Intuit ({len(revokes)} revoke call)"

    def reconnect() -> str:
        outcome = demo.browser_consent()
        view = demo.expect(demo.api("GET", "/connection"), 200)
        if view["status"] != "connected" or view["realm_id"] != realm_a:
            raise DemoFailure(f"status {view}")
        return f"same company again: mappings kept (realm {view['realm_id']}); {outcome['change']}"

    def revoked_in_qbo() -> str:
        sim.revoke_tokens(realm_a)  # the firm disconnects the app inside QuickBooks
        response = demo.api("POST", "/connection/check")
        body = demo.expect(response, 409)
        view = demo.expect(demo.api("GET", "/connection"), 200)
        if view["status"] != "needs_reconnect":
            raise DemoFailure(f"status {view['status']}")
        demo.browser_consent()
        view = demo.expect(demo.api("GET", "/connection"), 200)
        if view["status"] != "connected":
            raise DemoFailure(f"after reconnect: {view['status']}")
        return (
            f"check -> {response.status_code} {body['error']}; status needs_reconnect; "
            "owner reconnects -> connected"
        )

    def switch() -> str:
        sim.set_consent(realm_b)
        outcome = demo.browser_consent()
        if outcome["change"] != "switch_pending":
            raise DemoFailure(f"completing the connection: {outcome}")
        pending = demo.expect(demo.api("GET", "/connection"), 200)
        if (pending.get("pending_switch") or {}).get("realm_id") != realm_b or pending["realm_id"] != realm_a:
            raise DemoFailure(f"not pending: {pending}")
        wrong = demo.api("POST", "/connection/confirm-switch", body={"confirmation": "accept"})
        demo.expect(wrong, 400)
        done = demo.expect(
            demo.api("POST", "/connection/confirm-switch", body={"confirmation": "ACCEPT"}), 200
        )
        if done["realm_id"] != realm_b or not done.get("archived"):
            raise DemoFailure(f"switch result {done}")
        return (
            f"{outcome['change']}; 'accept' -> 400; 'ACCEPT' -> now {done['company_name']!r}, "
            f"old company archived ({done['archived'][0]['realm_id']})"
        )

    def outbound() -> str:
        account = _platform_event("client_account_created")
        invoice = _platform_event("invoice_created")
        data = invoice["detail"]["data"]
        for line in data["line_items"]:  # no platform services or tax map in this demo firm yet
            line.update(service_id=None, work_type_id=None, tax_rate_id=None, tax_amount=None)
        data.update(tax_total="0.00", total="605.00", balance_due="605.00")
        payment = _platform_event("payment_created")
        payment["detail"]["data"].update(
            amount="605.00", allocations=[{"invoice_id": data["id"], "amount": "605.00"}]
        )
        for event in (account, invoice, payment):
            demo.put_platform_event(event)
        payment_id = payment["detail"]["data"]["id"]
        demo.wait_for_status("Payment", payment_id, "synced")
        demo.settle()
        seen = demo.statuses[("Payment", payment_id, "synced")]
        demo.put_platform_event(payment)  # the platform sends the same payment again (a retry)
        demo.wait_for_status("Payment", payment_id, "synced", at_least=seen + 1)
        customers = [c for c in sim.entities(realm_b, "Customer") if c["DisplayName"] == "Harbour Bakery LLC"]
        invoices = sim.entities(realm_b, "Invoice")
        payments = sim.entities(realm_b, "Payment")
        if (len(customers), len(invoices), len(payments)) != (1, 1, 1):
            raise DemoFailure(
                f"customers {len(customers)}, invoices {len(invoices)}, payments {len(payments)}"
            )
        if Decimal(str(invoices[0]["Balance"])) != 0:
            raise DemoFailure(f"invoice balance {invoices[0]['Balance']}")
        return (
            f"QuickBooks now has customer {customers[0]['DisplayName']!r}, invoice total "
            f"{invoices[0]['TotalAmt']} with balance {invoices[0]['Balance']}, and 1 payment "
            "(the payment was sent twice)"
        )

    def events() -> str:
        got = demo.received_events()
        kinds = [f"{e['detail-type']}:{e['detail'].get('status') or e['detail'].get('change')}" for e in got]
        if not got:
            raise DemoFailure("the platform received no qbsync events")
        return f"{len(got)} events: " + ", ".join(kinds)

    def inbound_payments() -> str:
        try:
            return payments_from_quickbooks(demo, FIRM_ID)
        except (InboundDemoFailure, SimControlError) as exc:
            raise DemoFailure(str(exc)) from exc

    demo.step("Firm with no QuickBooks connection yet", check_before_connect)
    demo.step("Owner connects QuickBooks (connect URL -> Intuit consent -> callback)", connect)
    demo.step("Access token expires; the next QuickBooks call refreshes it once", refresh)
    demo.step("Token keep-alive schedule", keepalive)
    demo.step("Role and tenant guards", guards)
    demo.step("Owner disconnects", disconnect)
    demo.step("Owner reconnects to the same company", reconnect)
    demo.step("Firm disables the app inside QuickBooks", revoked_in_qbo)
    demo.step("Owner connects a different company (typed ACCEPT guard)", switch)
    demo.step("Platform received qbsync's connection events", events)
    demo.step("Platform sends an account, an invoice and a payment; each lands in QuickBooks once", outbound)
    invoice_id = _platform_event("invoice_created")["detail"]["data"]["id"]
    demo.step(DRIFT_TITLE, lambda: invoice_edited_in_quickbooks(demo, realm_b, invoice_id))
    demo.step(
        "Accountant records a partial and a split payment in QuickBooks; the platform receives them",
        inbound_payments,
    )
    if sample_scale > 0:
        sample = sample_firm_for(sample_scale)
        title = (
            f"Sample firm ({len(sample.records['ClientAccount'])} accounts, {len(sample.records['Invoice'])} "
            f"invoices, {len(sample.events)} events) syncs to QuickBooks"
        )
        demo.step(title, lambda: sync_sample_firm(demo, sample, timeout=sample_timeout))
        demo.step(
            "Owner fixes the sample firm's errors (admin API: map, settings + retry, skip; platform: rate)",
            lambda: fix_errors_through_api(demo, sample),
        )
        demo.step(RECONCILE_TITLE, lambda: drift_fixed_through_api(demo, sample))
    history_scale = sample_scale if history_scale is None else history_scale
    if history_scale > 0:
        history = history_firm_for(history_scale)
        demo.step(
            f"{HISTORY_TITLE} ({len(history.records['ClientAccount'])} accounts, "
            f"{len(history.records['Invoice'])} invoices)",
            lambda: sync_history(demo, history, timeout=sample_timeout),
        )


def sync_history(demo: Demo, history: SampleFirm, timeout: float) -> str:
    """The firm with history connects and its initial sync runs (``local.demo_history``); fails unless the
    run completed and QuickBooks matches the snapshot to the cent, each record once."""
    try:
        report = initial_sync_of_history(demo, history, timeout=timeout)
    except (HistoryDemoFailure, SimControlError) as exc:
        raise DemoFailure(str(exc)) from exc
    demo.history_report = report
    if not report.ok:
        raise DemoFailure(f"{len(report.problems)} check(s) failed: " + "; ".join(report.problems[:3]))
    return report.outcome()


def drift_fixed_through_api(demo: Demo, sample: SampleFirm) -> str:
    """The accountant changes the sample firm's records in QuickBooks unnotified; the scheduled resync's
    drift report finds each change, the owner fixes them, the next report is clean (``local.demo_reconcile``).
    """
    if demo.fixed_report is None:
        raise DemoFailure("the sample firm's errors were not fixed (the previous step failed)")
    try:
        return reconcile_sample_firm(demo, sample)
    except (ReconcileDemoFailure, SimControlError) as exc:
        raise DemoFailure(str(exc)) from exc


def sample_firm_for(scale: float) -> SampleFirm:
    """The issue-4 sample firm (55 accounts, 300 invoices) for the demo firm, or a scaled-down one."""
    n_accounts = max(5, round(N_ACCOUNTS * scale))
    n_invoices = max(n_accounts + 2, round(N_INVOICES * scale))
    return generate(FIRM_ID, n_accounts=n_accounts, n_invoices=n_invoices)


def sync_sample_firm(demo: Demo, sample: SampleFirm, timeout: float = SAMPLE_TIMEOUT_SECONDS) -> str:
    """Send the sample firm through the stack (progress lines while it runs); fails unless everything
    landed once, the totals match to the cent and only the deliberate errors are open."""
    try:
        report = sample_firm.run(demo, sample, realm_id=demo.realm_b, timeout=timeout)
    except SampleFirmError as exc:
        raise DemoFailure(str(exc)) from exc
    demo.sample_report = report
    requests_log = demo.sim.requests(realm_id=demo.realm_b, limit=100_000)
    api = [r for r in requests_log if "/v3/company/" in r.get("path", "")]
    demo.sample_requests = (len(api), sum(1 for r in api if r.get("status") == 429))
    if not report.ok:
        raise DemoFailure(
            f"the sample firm did not land as expected after {report.seconds_total:.0f}s "
            "(see the report below)"
        )
    synced = sum(1 for v in report.final_status.values() if v == "synced")
    return (
        f"{synced} records synced, {len(report.open_errors)} deliberate errors in the error log, "
        f"{len(sample.events)} events in {report.seconds_total:.0f}s "
        f"({len(sample.events) / max(report.seconds_total, 0.001):.1f} events/s)"
    )


def fix_errors_through_api(demo: Demo, sample: SampleFirm, timeout: float = FIX_TIMEOUT_SECONDS) -> str:
    """The owner deals with the sample firm's four deliberate errors, over HTTP with the owner's JWT: reads
    the error log, maps the vendor-named account to the bookkeeper's customer, maps the platform tax rate in
    the settings and resyncs the Taxes category, skips the colon account's error; the platform corrects the
    negative service rate (its "Service Updated" event), which syncs the service and the invoice held behind
    it. Then checks the error log (0 open; 3 resolved, 1 skipped), the records' statuses and, in QuickBooks,
    that every record is there exactly once with the totals to the cent (``SampleFirm.after_fixes``)."""
    if demo.sample_report is None:
        raise DemoFailure("the sample firm has not synced (the previous step failed)")
    realm = demo.realm_b
    taxed = sample.error("tax_rate_unmapped")
    colon = sample.error("name_invalid_characters")
    vendor_named = sample.error("duplicate_name")
    negative = sample.error("service_rate_negative")

    # 1. the error log as the owner sees it: the banner, then each error with its explanation and fix
    banner = demo.expect(demo.api("GET", "/errors/counts"), 200)
    _say(f"GET /errors/counts -> {_banner(banner)}")
    listed = _errors(demo, "open")
    _say(f"GET /errors -> {len(listed)} open:")
    error_of: dict[str, str] = {}
    for row in listed:
        detail = demo.expect(demo.api("GET", f"/errors/{row['error_id']}"), 200)
        _say(f"  [{detail['category']}] {detail['entity_type']} {detail['platform_id']}: {detail['title']}")
        _say(f"    explanation: {detail['explanation']}")
        _say(f"    how to fix:  {detail['fix']}")
        error_of[row["platform_id"]] = row["error_id"]
    wanted = {(d.platform_id, d.reason_code) for d in (taxed, colon, vendor_named, negative)}
    if {(e["platform_id"], e["code"]) for e in listed} != wanted or banner["total"] != len(wanted):
        raise DemoFailure(f"expected exactly the 4 deliberate errors open, the API shows {banner} / {listed}")

    # 2. the vendor-named account: map it to the customer the bookkeeper uses for that client
    account = sample.record("ClientAccount", vendor_named.platform_id)
    search = " ".join(str(account["name"]).split()[:3])
    found = demo.expect(demo.api("GET", "/qbo/customers?" + urlencode({"search": search})), 200)["customers"]
    _say(f"GET /qbo/customers?search={search!r} -> " + ", ".join(repr(c["display_name"]) for c in found))
    customer = next((c for c in found if c["display_name"] in sample.qbo_customers_before), None)
    if customer is None:
        raise DemoFailure(f"the search did not find the bookkeeper's customer {sample.qbo_customers_before}")
    mapped = demo.expect(
        demo.api(
            "POST",
            f"/errors/{error_of[vendor_named.platform_id]}/map-customer",
            body={"qbo_customer_id": customer["id"]},
        ),
        200,
    )
    _say(
        f"POST /errors/{error_of[vendor_named.platform_id]}/map-customer -> {mapped['outcome']} to customer "
        f"{customer['id']}, {mapped['released']} waiting record(s) queued again"
    )
    after_map = sample.after_fixes(mapped=[vendor_named.platform_id])
    released = sorted(after_map.expected_synced - sample.expected_synced)
    if mapped["outcome"] != "mapped" or mapped["released"] < 1:
        raise DemoFailure(f"map-customer answered {mapped}")
    _wait_synced(demo, released, timeout)
    _say("  now synced: " + ", ".join(f"{t} {pid}" for t, pid in released))

    # 3. the unmapped tax rate: map it in the settings (checked against QuickBooks), resync the category
    view = demo.expect(demo.api("GET", "/settings"), 200)
    settings = view["settings"]
    _say(f"GET /settings -> tax_map {settings['tax_map']} (is_default {view['is_default']})")
    code, rate = _sales_tax_code(demo, realm)
    bad = {**settings, "tax_map": {**settings["tax_map"], UNMAPPED_TAX_RATE: {"tax_code_id": "999999"}}}
    refused = demo.expect(demo.api("PUT", "/settings", body=bad), 400)
    _say(f"PUT /settings with a tax code QuickBooks does not have -> 400 {refused['message']!r}")
    settings["tax_map"] = {
        **settings["tax_map"],
        UNMAPPED_TAX_RATE: {"tax_code_id": code["Id"], "primary_rate_id": rate["Id"]},
    }
    stored = demo.expect(demo.api("PUT", "/settings", body=settings), 200)
    if stored["settings"]["tax_map"].get(UNMAPPED_TAX_RATE, {}).get("tax_code_id") != code["Id"]:
        raise DemoFailure(f"the stored settings lack the mapping: {stored}")
    _say(
        f"PUT /settings: {UNMAPPED_TAX_RATE} -> QuickBooks tax code {code['Id']} {code['Name']!r} "
        f"(rate {rate['Id']}, {rate['RateValue']}%; the invoice keeps the platform's tax amount) -> 200"
    )
    retry = demo.expect(
        demo.api("POST", "/errors/retry", body={"scope": "category", "category": "Taxes"}), 202
    )
    _say(f"POST /errors/retry {{scope: category, category: Taxes}} -> 202 request {retry['request_id']}")
    _wait_synced(demo, [(taxed.entity_type, taxed.platform_id)], timeout)
    _say(f"  now synced: {taxed.entity_type} {taxed.platform_id}")

    # 4. the negative service rate: the platform corrects it; the service and the invoice behind it sync
    service = dict(sample.record(negative.entity_type, negative.platform_id))
    service["rate"] = str(-Decimal(service["rate"]))
    correction = _platform_event("service_updated")
    correction["detail"].update(event_id=f"evt-{negative.platform_id}-rate", version=2, data=service)
    demo.put_platform_event(correction)
    after_rate = sample.after_fixes(mapped=[vendor_named.platform_id], fixed=[negative.platform_id])
    corrected = sorted(after_rate.expected_synced - after_map.expected_synced)
    _say(
        f"platform: Service Updated {negative.platform_id} with rate {service['rate']} (was "
        f"{sample.record(negative.entity_type, negative.platform_id)['rate']})"
    )
    _wait_synced(demo, corrected, timeout)
    _say("  now synced: " + ", ".join(f"{t} {pid}" for t, pid in corrected))

    # 5. the colon account: skip its error (its invoice stays unsynced, the error stops notifying)
    skipped = demo.expect(demo.api("POST", f"/errors/{error_of[colon.platform_id]}/skip"), 200)
    _say(
        f"POST /errors/{error_of[colon.platform_id]}/skip -> {skipped['status']}: the account and its "
        "invoice stay unsynced in QuickBooks, and the error no longer notifies or counts as open"
    )

    # 6. the error log after, the records' statuses, and QuickBooks checked against the expectations
    after = sample.after_fixes(
        mapped=[vendor_named.platform_id],
        fixed=[taxed.platform_id, negative.platform_id],
        skipped=[colon.platform_id],
    )

    def no_open_error() -> dict[str, Any] | None:
        counts: dict[str, Any] = demo.expect(demo.api("GET", "/errors/counts"), 200)
        return counts if counts["total"] == 0 else None

    banner = _until(demo, no_open_error, timeout, "the error log to show no open error")
    resolved, skipped_rows = _errors(demo, "resolved"), _errors(demo, "skipped")
    _say(f"GET /errors/counts -> {_banner(banner)}")
    for status, rows in (("resolved", resolved), ("skipped", skipped_rows)):
        for row in rows:
            _say(
                f"  {status:<8} [{row['category']}] {row['entity_type']} {row['platform_id']}: {row['title']}"
            )
    statuses = {
        (r["platform_id"], r["code"]): r["status"]
        for r in resolved + skipped_rows
        if r["code"] not in DRIFT_CODES  # the drift step's own error, resolved there (local.demo_drift)
    }
    expected = {
        (taxed.platform_id, taxed.reason_code): "resolved",
        (vendor_named.platform_id, vendor_named.reason_code): "resolved",
        (negative.platform_id, negative.reason_code): "resolved",
        (colon.platform_id, colon.reason_code): "skipped",
    }
    if statuses != expected:
        raise DemoFailure(f"error statuses {statuses}, expected {expected}")
    landed = [*released, *corrected, (taxed.entity_type, taxed.platform_id)]
    checks = [(k, "synced") for k in landed]
    checks += [(k, "failed") for k in sorted(after.expected_failed)]
    checks += [(k, "skipped") for k in sorted(after.expected_held)]
    held: list[str] = []
    for (entity_type, platform_id), want in checks:
        row = demo.expect(demo.api("GET", f"/sync/records/{_API_TYPE[entity_type]}/{platform_id}"), 200)
        if row["status"] != want:
            raise DemoFailure(f"{entity_type} {platform_id} is {row['status']}, expected {want}")
        if (entity_type, platform_id) in after.expected_held:
            held.append(f"  held: {entity_type} {platform_id} skipped - {row.get('skip_reason')}")
        if (entity_type, platform_id) in released and entity_type == "Invoice":
            invoice = next((i for i in demo.sim.entities(realm, "Invoice") if i["Id"] == row["qbo_id"]), {})
            if (invoice.get("CustomerRef") or {}).get("value") != customer["id"]:
                raise DemoFailure(f"invoice {platform_id} is not billed to customer {customer['id']}")
    _say("GET /sync/records/...: " + ", ".join(f"{t} {p} {w}" for (t, p), w in checks))
    for line in held:  # what the firm sees on each record that waits behind the skipped error
        _say(line)
    names = Counter(c["DisplayName"] for c in demo.sim.entities(realm, "Customer"))
    if names[customer["display_name"]] != 1 or names[str(account["name"])]:
        raise DemoFailure(
            f"customers named like the client: {names[customer['display_name']]} + {names[account['name']]}"
        )
    demo.settle(quiet_seconds=2, timeout=10)
    report = sample_firm.read_report(demo, after, realm)
    demo.fixed_report = report
    if not report.ok:
        raise DemoFailure(
            "QuickBooks does not hold what it should after the fixes:\n" + report.render("after")
        )
    n_invoices = report.in_qbo.get("Invoice", 0)
    return (
        f"open errors 4 -> 0 (3 resolved, 1 skipped); {len(landed)} records landed after the fixes; "
        f"{n_invoices} invoices in QuickBooks, each once, totals {report.qbo_invoice_total} match to the cent"
    )


#: entity types of the event contract -> of the admin API's /sync/records routes
_API_TYPE = sample_firm.API_TYPE


def _say(line: str) -> None:
    print(f"     {line}", flush=True)


def _banner(counts: dict[str, Any]) -> str:
    by = ", ".join(f"{k} {v}" for k, v in sorted(counts["by_category"].items()) if v)
    return f"{counts['total']} open" + (f" ({by})" if by else "")


def _errors(demo: Demo, status: str) -> list[dict[str, Any]]:
    """Every error of the demo firm with that status, following ``next_cursor``."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"status": status, "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = demo.expect(demo.api("GET", "/errors?" + urlencode(query)), 200)
        out += page["errors"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def _sales_tax_code(demo: Demo, realm: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The owner's choice for the platform's sales tax rate: an active single-rate sales tax code of the
    QuickBooks company (the admin API has no tax-code list, so the demo reads the simulator's)."""
    rates = {r["Id"]: r for r in demo.sim.entities(realm, "TaxRate")}
    for code in sorted(demo.sim.entities(realm, "TaxCode"), key=lambda c: c["Id"]):
        ids = [
            d["TaxRateRef"]["value"] for d in (code.get("SalesTaxRateList") or {}).get("TaxRateDetail", [])
        ]
        if code.get("Active") and len(ids) == 1 and ids[0] in rates:
            return code, rates[ids[0]]
    raise DemoFailure("the QuickBooks company has no single-rate sales tax code")


def _wait_synced(demo: Demo, keys: list[tuple[str, str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for entity_type, platform_id in keys:
        demo.wait_for_status(
            entity_type, platform_id, "synced", timeout=max(1.0, deadline - time.monotonic())
        )


def _until(demo: Demo, check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (paced by long-polling the platform's inbox)."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() >= deadline:
            raise DemoFailure(f"timed out after {timeout:.0f}s waiting for {what}")
        demo._poll_inbox(wait_seconds=1)
    return result


def _platform_event(name: str) -> dict[str, Any]:
    """A sample platform event from events/platform, for the demo firm."""
    event = json.loads((REPO_ROOT / "events" / "platform" / f"{name}.json").read_text(encoding="utf-8"))
    event["detail"]["firm_id"] = FIRM_ID
    return dict(event)


def summary(demo: Demo, elapsed: float) -> None:
    width = max(len(s.title) for s in demo.steps) + 2
    print()
    print("=" * (width + 20))
    print("qbsync demo summary")
    print("=" * (width + 20))
    for number, s in enumerate(demo.steps, 1):
        print(f"{number:2d}. {s.title:<{width}} {'ok' if s.ok else 'FAILED':<7}{s.seconds:6.2f}s")
    requests_log = demo.sim.requests(limit=100_000)
    token_calls = sum(1 for r in requests_log if "tokens/bearer" in r.get("path", ""))
    api_calls = sum(1 for r in requests_log if "/v3/company/" in r.get("path", ""))
    throttled = sum(1 for r in requests_log if "/v3/company/" in r.get("path", "") and r.get("status") == 429)
    ok = sum(s.ok for s in demo.steps)
    if demo.sample_report is not None:
        print("-" * (width + 20))
        print(demo.sample_report.render())
        n_api, n_429 = demo.sample_requests
        records = len(demo.sample_report.sample.events)
        print(
            f"QuickBooks API requests for the sample company: {n_api} ({n_429} answered 429); "
            f"{records / max(demo.sample_report.seconds_total, 0.001):.1f} events/s"
        )
    if demo.fixed_report is not None:
        print("-" * (width + 20))
        print("After the owner fixed the errors through the admin API:")
        print(
            demo.fixed_report.render(
                "checked again after: map-customer, settings + Taxes retry, skip, the platform's rate fix"
            )
        )
    if demo.history_report is not None:
        print("-" * (width + 20))
        print(demo.history_report.render())
    print("-" * (width + 20))
    print(
        f"steps ok: {ok}/{len(demo.steps)}   QuickBooks token calls: {token_calls}   API calls: {api_calls}"
        f" ({throttled} throttled)"
    )
    print(f"function logs: {demo.stack.log_dir}   total {elapsed:.1f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sample-scale",
        type=float,
        default=1.0,
        help="size of the sample firm of the last step (1 = the issue's 55 accounts and 300 invoices; "
        "0 = leave the step out)",
    )
    parser.add_argument(
        "--sample-timeout",
        type=float,
        default=SAMPLE_TIMEOUT_SECONDS,
        help="seconds the sample-firm step and the history step each wait at most "
        f"(default {SAMPLE_TIMEOUT_SECONDS:.0f})",
    )
    parser.add_argument(
        "--history-scale",
        type=float,
        default=None,
        help="size of the firm with history whose initial sync the last step runs (default: the same as "
        "--sample-scale; 0 = leave the step out)",
    )
    args = parser.parse_args(argv)
    if args.sample_scale < 0 or args.sample_timeout <= 0 or (args.history_scale or 0) < 0:
        parser.error("--sample-scale and --history-scale must be >= 0 and --sample-timeout > 0")
    started = time.perf_counter()
    print("qbsync demo: starting the QuickBooks simulator and the local stack ...", flush=True)
    with demo_environment() as demo:
        run(
            demo,
            sample_scale=args.sample_scale,
            sample_timeout=args.sample_timeout,
            history_scale=args.history_scale,
        )
        summary(demo, time.perf_counter() - started)
    return 0 if all(s.ok for s in demo.steps) else 1


@contextmanager
def demo_environment(pollers: int = POLLERS) -> Iterator[Demo]:
    """The simulator (Intuit's real limits) with two companies, the local stack with the Intuit app
    registered and consent on the first company, and the platform's subscription to qbsync's events."""
    # the request log keeps every request of a full sample-firm run (the summary counts them)
    with SimulatorServer(SimConfig(request_log_size=50_000)) as server:
        sim = SimControl(server.url)
        realm_a = sim.create_company(company_name="Harbor & Main CPA Clients")["realm_id"]
        realm_b = sim.create_company(company_name="Harbor & Main CPA (new books)")["realm_id"]
        with LocalStack(REPO_ROOT, simulator_url=server.url, poller_concurrency=pollers) as stack:
            stack.register_intuit_app(server.url)
            sim.set_consent(realm_a)
            resources = stack.resources
            assert resources is not None
            secret = clients(stack.endpoint_url, stack.region)["secretsmanager"].get_secret_value(
                SecretId=resources.ref("AdminJwtSecret")
            )
            jwt_key = json.loads(secret["SecretString"])["key"]
            print(f"  simulator {server.url}   API {stack.api_url}   moto {stack.endpoint_url}", flush=True)
            demo = Demo(stack=stack, sim=sim, realm_a=realm_a, realm_b=realm_b, jwt_key=jwt_key)
            demo.events_queue_url = subscribe_to_qbsync_events(stack)
            yield demo


if __name__ == "__main__":
    sys.exit(main())
