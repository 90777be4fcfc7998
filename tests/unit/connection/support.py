"""Test support of the connection lifecycle: tables from template.yaml, fakes of the Intuit side.

The sync-state table is created from ``template.yaml``'s ``SyncStateTable`` definition (read with a YAML
loader that ignores CloudFormation tags), so tests cannot drift from the deployed key design.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from qbsync.errors import ReconnectRequired, ServiceUnavailable, UncertainOutcome
from qbsync.qbo.oauth import TokenSet

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


_CfnLoader.add_multi_constructor("!", _any_tag)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)


def create_table_from_template(dynamodb_client: Any, logical_id: str, table_name: str) -> str:
    """Create ``table_name`` with the key schema, GSIs and TTL of the template's ``logical_id``."""
    props = load_template()["Resources"][logical_id]["Properties"]
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    dynamodb_client.create_table(**kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb_client.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)
    return table_name


class SerializedClient:
    """A boto3 client whose calls run one at a time.

    Real DynamoDB applies every conditional write atomically; moto's backend has no locking, so two
    threads can both pass the same condition. Serializing the calls restores DynamoDB's guarantee
    (the code under test is unchanged; only the fake AWS is made faithful).
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


class RecordingPublisher:
    """In-memory EventPublisher: keeps what was published."""

    def __init__(self) -> None:
        self.entries: list[Any] = []

    def publish(self, events: Any) -> list[Any]:
        self.entries.extend(events)
        return list(events)

    def details(self, change: str | None = None) -> list[dict[str, Any]]:
        out = [e.model_dump(mode="json") for e in self.entries]
        return [d for d in out if change is None or d["change"] == change]


@dataclass
class FakeIntuit:
    """An in-memory Intuit OAuth server+client: rotating refresh tokens, one grant per realm.

    ``gate``: when set, ``refresh`` waits for it (lets tests hold a refresh in flight).
    ``lose_next_refresh``: the next refresh rotates the token at "Intuit" but raises UncertainOutcome.
    """

    clock: Any
    access_ttl: float = 3600
    refresh_calls: int = 0
    revoked: list[str] = field(default_factory=list)
    lose_next_refresh: bool = False
    unavailable_next_refresh: bool = False
    gate: threading.Event | None = None
    codes: dict[str, str] = field(default_factory=dict)  # code -> realm
    current_rt: dict[str, str] = field(default_factory=dict)  # realm -> live refresh token
    live_at: set[str] = field(default_factory=set)
    at_realm: dict[str, str] = field(default_factory=dict)  # access token -> the realm it was granted for
    #: the next CompanyInfo reads fail with this error (QuickBooks down, throttled, ...)
    company_info_failures: list[Exception] = field(default_factory=list)
    #: Preferences.SalesFormsPrefs.CustomTxnNumbers of every company; the next Preferences reads fail with
    #: ``preferences_failures``
    custom_txn_numbers: bool = True
    preferences_failures: list[Exception] = field(default_factory=list)
    preferences_reads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorization_url(self, *, redirect_uri: str, state: str, scopes: Any = ()) -> str:
        return f"https://appcenter.example/connect/oauth2?state={state}&redirect_uri={redirect_uri}"

    def issue_code(self, realm_id: str) -> str:
        code = "code-" + secrets.token_hex(8)
        self.codes[code] = realm_id
        return code

    def _token_set(self, realm_id: str) -> TokenSet:
        now = datetime.fromtimestamp(self.clock(), UTC)
        rt = f"RT-{realm_id}-{secrets.token_hex(6)}"
        at = f"AT-{realm_id}-{secrets.token_hex(6)}"
        self.current_rt[realm_id] = rt
        self.live_at.add(at)
        self.at_realm[at] = realm_id
        return TokenSet(
            access_token=at,
            refresh_token=rt,
            access_expires_at=now + timedelta(seconds=self.access_ttl),
            refresh_expires_at=now + timedelta(days=100),
            refresh_hard_expires_at=now + timedelta(days=5 * 365),
        )

    def exchange_code(self, *, code: str, redirect_uri: str) -> TokenSet:
        realm = self.codes.pop(code, None)
        if realm is None:
            raise ReconnectRequired("invalid_grant")
        return self._token_set(realm)

    def realm_of_rt(self, token: str) -> str | None:
        return next((r for r, rt in self.current_rt.items() if rt == token), None)

    def refresh(self, refresh_token: str) -> TokenSet:
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        with self._lock:
            self.refresh_calls += 1
            if self.unavailable_next_refresh:
                self.unavailable_next_refresh = False
                raise ServiceUnavailable("token endpoint down")
            realm = self.realm_of_rt(refresh_token)
            if realm is None:
                raise ReconnectRequired("invalid_grant")
            tokens = self._token_set(realm)
            if self.lose_next_refresh:
                self.lose_next_refresh = False
                raise UncertainOutcome("response lost", refresh_token_may_be_superseded=True)
            return tokens

    def revoke(self, token: str) -> None:
        self.revoked.append(token)
        realm = self.realm_of_rt(token)
        if realm is not None:
            del self.current_rt[realm]


class FakeCompanyInfo:
    """CompanyInfo as QuickBooks answers it: 401 for a dead token, 403 (ReconnectRequired, as
    ``qbsync.qbo.faults`` maps it) for a token granted for another company."""

    def __init__(self, intuit: FakeIntuit, realm_id: str, tokens: Any) -> None:
        self._intuit, self._realm, self._tokens = intuit, realm_id, tokens

    def company_info(self) -> dict[str, Any]:
        if self._intuit.company_info_failures:
            raise self._intuit.company_info_failures.pop(0)
        token = self._tokens.access_token()
        if token not in self._intuit.live_at:
            token = self._tokens.refresh_after_unauthorized(token)
            if token not in self._intuit.live_at:
                raise ReconnectRequired("401 twice")
        if self._intuit.at_realm.get(token) != self._realm:
            raise ReconnectRequired("403 ApplicationAuthorizationFailed", qbo_code="3100")
        return {"CompanyName": f"Company {self._realm}", "Id": "1"}

    def preferences(self) -> dict[str, Any]:
        self._intuit.preferences_reads += 1
        if self._intuit.preferences_failures:
            raise self._intuit.preferences_failures.pop(0)
        if self._intuit.at_realm.get(self._tokens.access_token()) != self._realm:
            raise ReconnectRequired("403 ApplicationAuthorizationFailed", qbo_code="3100")
        return {"Id": "1", "SalesFormsPrefs": {"CustomTxnNumbers": self._intuit.custom_txn_numbers}}


class Clock:
    """A settable clock (epoch seconds)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = start if start is not None else datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
