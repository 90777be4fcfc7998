"""The control API, the CLI and webhook notifications end to end over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from local.qbo_sim.client import SimControlError


class _Receiver:
    """A webhook endpoint on a free port that records (headers, raw body) of every POST."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    rec = _Receiver()
    yield rec
    rec.close()


def _signature(token: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize("fmt", ["classic", "cloudevents"])
def test_changes_notify_connected_apps_with_signed_webhooks(qbo_sim, qbo_company, receiver, fmt):
    control = qbo_sim.control
    client_id = f"hook-{fmt}"
    control.create_app(
        client_id,
        "s3cret",
        ["https://hook.example/cb"],
        webhook={"url": receiver.url, "verifier_token": "verifier-123", "format": fmt},
    )
    tokens = control.issue_tokens(client_id, qbo_company)
    response = requests.post(
        f"{qbo_sim.url}/v3/company/{qbo_company}/customer",
        json={"DisplayName": f"Webhook {fmt}"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    customer = response.json()["Customer"]
    control.flush_webhooks()
    mine = [(h, b) for h, b in receiver.received if qbo_company.encode() in b]
    assert mine, "no notification arrived"
    headers, body = mine[-1]
    assert headers["intuit-signature"] == _signature("verifier-123", body)
    payload = json.loads(body)
    if fmt == "classic":
        note = payload["eventNotifications"][0]
        assert note["realmId"] == qbo_company
        entity = note["dataChangeEvent"]["entities"][0]
        assert (entity["name"], entity["id"], entity["operation"]) == ("Customer", customer["Id"], "Create")
    else:
        event = payload[0]
        assert event["specversion"] == "1.0"
        assert event["type"] == "qbo.customer.created.v1"
        assert event["intuitentityid"] == customer["Id"]
        assert event["intuitaccountid"] == qbo_company
    assert any(d["outcome"] == "delivered" for d in control.webhook_deliveries())


def test_apps_not_connected_to_the_realm_get_nothing(qbo_sim, qbo_company, qbo_tokens, receiver):
    control = qbo_sim.control
    control.create_app(
        "hook-unconnected",
        "s",
        ["https://x.example/cb"],
        webhook={"url": receiver.url, "verifier_token": "v"},
    )
    requests.post(
        f"{qbo_sim.url}/v3/company/{qbo_company}/customer",
        json={"DisplayName": "Quiet Co"},
        headers={"Authorization": f"Bearer {qbo_tokens['access_token']}"},
        timeout=10,
    )
    control.flush_webhooks()
    assert not [b for _, b in receiver.received if qbo_company.encode() in b]


def test_company_lifecycle_and_errors(qbo_sim):
    control = qbo_sim.control
    realm = control.create_company("Lifecycle Co", seed="empty", realm_id="4620816365000000001")["realm_id"]
    assert realm == "4620816365000000001"
    assert control.entities(realm, "Account") == []
    with pytest.raises(SimControlError) as dup:
        control.create_company("Again", realm_id=realm)
    assert dup.value.status == 409
    reset = control._call("POST", f"/_sim/companies/{realm}/reset", {"seed": "default"})
    assert reset["counts"]["Account"] > 5
    control.delete_company(realm)
    with pytest.raises(SimControlError) as gone:
        control.entities(realm, "Account")
    assert gone.value.status == 404
    with pytest.raises(SimControlError) as bad_seed:
        control.create_company("Bad", seed="weird")
    assert bad_seed.value.status == 400


def test_reset_wipes_objects(qbo_sim, qbo_company, qbo_tokens):
    requests.post(
        f"{qbo_sim.url}/v3/company/{qbo_company}/customer",
        json={"DisplayName": "Temp"},
        headers={"Authorization": f"Bearer {qbo_tokens['access_token']}"},
        timeout=10,
    )
    assert qbo_sim.control.entities(qbo_company, "Customer")
    qbo_sim.control.reset_company(qbo_company)
    assert qbo_sim.control.entities(qbo_company, "Customer") == []


def test_control_rejects_bad_bodies(qbo_sim, qbo_company):
    control = qbo_sim.control
    for call in (
        lambda: control.advance_clock(-5),
        lambda: control.set_preferences(qbo_company, books_closed_date="31/12/2025"),
        lambda: control.set_preferences(qbo_company, colour="blue"),
        lambda: control.expire_tokens("forever"),
        lambda: control.set_limits(requests_per_minute=0),
        lambda: control.set_latency(fixed_ms=-1),
        lambda: control.create_app("", "s", []),
        lambda: control.set_consent("999999"),
    ):
        with pytest.raises(SimControlError) as err:
            call()
        assert err.value.status in (400, 404)


def test_preferences_patch_is_visible_through_the_api(qbo_sim, qbo_company, qbo_tokens):
    qbo_sim.control.set_preferences(
        qbo_company, custom_txn_numbers=True, automated_sales_tax=True, multicurrency=True
    )
    prefs = requests.get(
        f"{qbo_sim.url}/v3/company/{qbo_company}/preferences",
        headers={"Authorization": f"Bearer {qbo_tokens['access_token']}"},
        timeout=10,
    ).json()["Preferences"]
    assert prefs["SalesFormsPrefs"]["CustomTxnNumbers"] is True
    assert prefs["TaxPrefs"]["PartnerTaxEnabled"] is True
    assert prefs["CurrencyPrefs"]["MultiCurrencyEnabled"] is True
    assert prefs["SyncToken"] == "1"


def test_cli_starts_prints_url_and_serves():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.qbo_sim",
            "--port",
            "0",
            "--company",
            "123145678901234",
            "--app",
            "cli-app:cli-secret:https://cli.example/cb",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        # the port is bound before the URL is printed, so the first request simply waits in the backlog
        health = requests.get(f"{url}/_sim/health", timeout=10).json()
        assert health["companies"] == 1 and health["apps"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_lost_webhook_is_never_delivered_and_is_listed(qbo_sim, qbo_company, receiver):
    control = qbo_sim.control
    client_id = "hook-lose"
    control.create_app(
        client_id,
        "s",
        ["https://hook.example/cb"],
        webhook={"url": receiver.url, "verifier_token": "v-lose", "format": "classic"},
    )
    tokens = control.issue_tokens(client_id, qbo_company)
    rule = control.lose_webhooks(count=1, realm_id=qbo_company)
    assert control.webhook_losses() == [rule]

    def create(name: str) -> str:
        answer = requests.post(
            f"{qbo_sim.url}/v3/company/{qbo_company}/customer",
            json={"DisplayName": name},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            timeout=10,
        )
        return answer.json()["Customer"]["Id"]

    lost_id = create("Never Announced Co")
    control.flush_webhooks(include_retries=True)
    assert not [b for _, b in receiver.received if qbo_company.encode() in b]
    lost = [
        d for d in control.webhook_deliveries() if d["outcome"] == "lost" and d["realm_id"] == qbo_company
    ]
    assert [c["id"] for d in lost for c in d["changes"]] == [lost_id]
    assert control.webhook_losses() == []
    # the next change of the company is announced again
    create("Announced Co")
    control.flush_webhooks()
    assert [b for _, b in receiver.received if qbo_company.encode() in b]


def test_lose_webhooks_refuses_bad_bodies_and_clear_faults_forgets_them(qbo_sim):
    control = qbo_sim.control
    for body in ({"count": 0}, {"count": "1"}, {"realm_id": ""}, {"nope": 1}):
        with pytest.raises(SimControlError) as refused:
            control._call("POST", "/_sim/webhooks/lose", body)
        assert refused.value.status == 400
    control.lose_webhooks(count=2, realm_id="123")
    control.clear_faults()
    assert control.webhook_losses() == []
