"""Intuit webhooks (QBO.md §6): grouped, signed notifications with Intuit's retry schedule.

How the simulator delivers, and why:

- Changes are **grouped per app and realm**: the first change of a group opens a window of
  ``group_window_seconds`` (on the injected clock); when it closes, the group becomes one POST.
  Intuit sends one realm per notification (QBO.md §6.2), so groups never mix realms.
- **classic** format: ``{"eventNotifications":[{"realmId", "dataChangeEvent":{"entities":[...]}}]}``
  with ``name``, ``id``, ``operation``, ``lastUpdated`` and, for Merge, ``deletedId``.
- **cloudevents** format: a JSON array of CloudEvents 1.0 objects (``specversion``, ``id``, ``source``,
  ``type`` = ``qbo.<entity>.<created|updated|deleted|merged|voided|emailed>.v1``, ``datacontenttype``,
  ``time``, ``intuitentityid``, ``intuitaccountid`` = realm, ``data`` = ``{}``), at most 100 per POST.
  The merged-away id of a Merge is not carried (Intuit documents no field for it).
- Header ``intuit-signature`` = base64(HMAC-SHA256(verifier token, raw body)); Content-Type
  ``application/json`` for both formats.
- A delivery succeeds on any 2xx. Otherwise (other status, connection error, timeout) it is retried
  with the *same bytes* (so CloudEvent ids repeat, as Intuit's do) after each delay of
  ``retry_delays`` (Intuit's schedule, QBO.md §6.5); after the last one it is given up.
- **Head-of-line blocking** (QBO.md §6.5): an app's later notifications wait until the earlier one
  is acknowledged or given up.

- **Lost notifications** (a fault for tests, ``lose_next``): the next ``count`` POSTs built for a realm
  (and/or app) are never sent and never retried, as when Intuit's retries run out or a notification
  simply never comes. Each is recorded with ``outcome`` ``lost`` (``attempt`` 0, ``status`` None), so a
  test sees what was lost; catching up is CDC's job.

Nothing here sleeps on behalf of tests: ``flush_now()`` closes every open group and attempts every
due delivery synchronously; retries become due when the injected clock passes their time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

OPERATIONS = ("Create", "Update", "Delete", "Merge", "Void", "Emailed")
FORMATS = ("classic", "cloudevents")
# CloudEvents type verbs for the legacy operation names (QBO.md §6.3).
_CE_VERBS = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Merge": "merged",
    "Void": "voided",
    "Emailed": "emailed",
}
# Intuit's retry delays after the first attempt: 10 s, 20 s, 30 s, 5 min, 20 min, 2 h, 4 h, 6 h.
INTUIT_RETRY_DELAYS: tuple[float, ...] = (10, 20, 30, 300, 1200, 7200, 14400, 21600)
MAX_CLOUDEVENTS_PER_POST = 100
SEND_TIMEOUT_SECONDS = 3.0  # Intuit expects the 200 within 3 s (QBO.md §6.5)
_POLL_SECONDS = 0.05  # how often the background thread looks at the (possibly advanced) clock

Sender = Callable[[str, dict[str, str], bytes], int]


def sign(verifier_token: str, body: bytes) -> str:
    """The ``intuit-signature`` value of ``body``."""
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _requests_send(url: str, headers: dict[str, str], body: bytes) -> int:
    import requests  # imported lazily: only the real sender needs it

    return requests.post(url, data=body, headers=headers, timeout=SEND_TIMEOUT_SECONDS).status_code


@dataclass
class _AppHook:
    url: str
    verifier_token: str
    format: str


@dataclass
class _Group:
    realm_id: str
    opened_at: float
    entities: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _LossRule:
    """Lose the next ``count`` notifications (POSTs) for ``realm_id`` / ``client_id`` (None = any)."""

    count: int
    realm_id: str | None = None
    client_id: str | None = None
    lost: int = 0
    rule_id: int = 0

    def matches(self, client_id: str, realm_id: str) -> bool:
        return (
            self.lost < self.count
            and self.realm_id in (None, realm_id)
            and self.client_id in (None, client_id)
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "count": self.count,
            "lost": self.lost,
            "remaining": self.count - self.lost,
            "realm_id": self.realm_id,
            "client_id": self.client_id,
        }


@dataclass
class _Delivery:
    client_id: str
    realm_id: str
    url: str
    format: str
    body: bytes
    headers: dict[str, str]
    entity_count: int
    event_ids: list[str]
    attempts: int = 0
    due_at: float = 0.0
    #: what it announces (name, id, operation), listed with every attempt
    changes: list[dict[str, str]] = field(default_factory=list)


class WebhookDispatcher:
    """Collects entity changes and POSTs signed notifications to each app's endpoint.

    ``clock`` returns an aware datetime (the simulator's clock); ``send(url, headers, body)`` returns
    the HTTP status and may raise (connection error, timeout: counted as a failed attempt).
    Thread-safe: ``record_change`` only appends under a lock and never waits on the network.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        send: Sender | None = None,
        group_window_seconds: float = 1.0,
        retry_delays: tuple[float, ...] = INTUIT_RETRY_DELAYS,
        max_records: int = 1000,
    ) -> None:
        if group_window_seconds < 0:
            raise ValueError("group_window_seconds must be >= 0")
        if any(d < 0 for d in retry_delays):
            raise ValueError("retry_delays must be >= 0")
        self._clock = clock
        self._send: Sender = send or _requests_send
        self.group_window_seconds = float(group_window_seconds)
        self.retry_delays = tuple(float(d) for d in retry_delays)
        self._lock = threading.Lock()  # guards the data below
        self._pass_lock = threading.Lock()  # one delivery pass at a time (thread vs flush_now)
        self._apps: dict[str, _AppHook] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._queues: dict[str, deque[_Delivery]] = {}
        self._records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._losses: list[_LossRule] = []
        self._loss_ids = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ configuration

    def configure_app(
        self, client_id: str, *, url: str, verifier_token: str, format: str = "classic"
    ) -> None:
        """Set (or replace) the endpoint of an app. Raises ValueError on an empty url/token or an
        unknown format. Deliveries already built keep the endpoint they were built for."""
        if not url or not verifier_token:
            raise ValueError("webhook url and verifier_token are required")
        if format not in FORMATS:
            raise ValueError(f"webhook format must be one of {FORMATS}")
        with self._lock:
            self._apps[client_id] = _AppHook(url, verifier_token, format)

    def remove_app(self, client_id: str) -> None:
        """Stop notifying an app: its open groups and queued deliveries are dropped."""
        with self._lock:
            self._apps.pop(client_id, None)
            self._queues.pop(client_id, None)
            for key in [k for k in self._groups if k[0] == client_id]:
                del self._groups[key]

    # ------------------------------------------------------------------------------ faults

    def lose_next(
        self, count: int = 1, *, realm_id: str | None = None, client_id: str | None = None
    ) -> dict[str, Any]:
        """Lose the next ``count`` notifications built for ``realm_id`` and/or ``client_id`` (None: any):
        built, signed, recorded with outcome ``lost``, never sent, never retried. Returns the rule.
        Raises ValueError for a count below 1 or empty ids."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be an integer >= 1")
        for name, value in (("realm_id", realm_id), ("client_id", client_id)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string")
        with self._lock:
            self._loss_ids += 1
            rule = _LossRule(count, realm_id, client_id, rule_id=self._loss_ids)
            self._losses.append(rule)
            return rule.public()

    def losses(self) -> list[dict[str, Any]]:
        """The loss rules with notifications still to lose."""
        with self._lock:
            return [r.public() for r in self._losses if r.lost < r.count]

    def clear_losses(self) -> None:
        """Forget every loss rule (notifications are delivered again)."""
        with self._lock:
            self._losses.clear()

    def _lose(self, client_id: str, realm_id: str) -> bool:
        """Whether the notification about to be queued is lost instead (caller holds the lock)."""
        for rule in self._losses:
            if rule.matches(client_id, realm_id):
                rule.lost += 1
                if rule.lost >= rule.count:
                    self._losses.remove(rule)
                return True
        return False

    # ------------------------------------------------------------------------------ intake

    def record_change(
        self,
        client_id: str,
        realm_id: str,
        entity_name: str,
        entity_id: str,
        operation: str,
        last_updated: str,
        deleted_id: str | None = None,
    ) -> None:
        """Queue one change for ``client_id``. Raises ValueError for an unknown operation, missing
        names/ids, or an app that has no webhook configured."""
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {OPERATIONS}")
        if not (realm_id and entity_name and entity_id and last_updated):
            raise ValueError("realm_id, entity_name, entity_id and last_updated are required")
        entity = {
            "name": entity_name,
            "id": str(entity_id),
            "operation": operation,
            "lastUpdated": last_updated,
        }
        if deleted_id is not None:
            entity["deletedId"] = str(deleted_id)
        now = self._now()
        with self._lock:
            if client_id not in self._apps:
                raise ValueError("no webhook endpoint is configured for this app")
            key = (client_id, realm_id)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(realm_id, now)
            group.entities.append(entity)

    # ------------------------------------------------------------------------------ delivery

    def pending(self) -> int:
        """Changes not yet acknowledged: in open groups plus in queued deliveries."""
        with self._lock:
            grouped = sum(len(g.entities) for g in self._groups.values())
            queued = sum(d.entity_count for q in self._queues.values() for d in q)
            return grouped + queued

    def flush_now(self, *, include_retries: bool = False) -> None:
        """Close every open group and attempt every due delivery now, synchronously.

        Retries wait for their time on the clock unless ``include_retries`` is true.
        """
        self._pass(close_all=True, force_retries=include_retries)

    def tick(self) -> None:
        """One pass of the background thread: close the groups whose window has elapsed on the clock
        and attempt the due deliveries (synchronously)."""
        self._pass(close_all=False, force_retries=False)

    def deliveries(self) -> list[dict[str, Any]]:
        """Every attempt so far (oldest first): url, format, status (None on a connection error),
        attempt, entities, realm_id, client_id, outcome (delivered | retry_scheduled | gave_up | lost),
        time, the event ids and ``changes`` (name, id, operation: what it announces). Never the verifier
        token or the signature. A ``lost`` notification (:meth:`lose_next`) has attempt 0 and status
        None."""
        with self._lock:
            return [dict(r) for r in self._records]

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="qbo-sim-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the background thread. Undelivered changes stay queued."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            self.tick()

    def _now(self) -> float:
        return self._clock().timestamp()

    def _pass(self, *, close_all: bool, force_retries: bool) -> None:
        with self._pass_lock:
            now = self._now()
            with self._lock:
                for key in list(self._groups):
                    group = self._groups[key]
                    if close_all or now - group.opened_at >= self.group_window_seconds:
                        del self._groups[key]
                        self._enqueue(key[0], group, now)
                client_ids = list(self._queues)
            for client_id in client_ids:
                self._drain(client_id, force_retries)

    def _enqueue(self, client_id: str, group: _Group, now: float) -> None:
        """Build the POST(s) of a closed group (caller holds the lock)."""
        hook = self._apps.get(client_id)
        if hook is None:
            return
        queue = self._queues.setdefault(client_id, deque())
        # (body, the entities it announces, CloudEvent ids)
        bodies: list[tuple[bytes, list[dict[str, str]], list[str]]] = []
        if hook.format == "classic":
            payload: Any = {
                "eventNotifications": [
                    {"realmId": group.realm_id, "dataChangeEvent": {"entities": group.entities}}
                ]
            }
            bodies = [(json.dumps(payload, separators=(",", ":")).encode(), group.entities, [])]
        else:
            for start in range(0, len(group.entities), MAX_CLOUDEVENTS_PER_POST):
                chunk = group.entities[start : start + MAX_CLOUDEVENTS_PER_POST]
                events = [self._cloudevent(client_id, group.realm_id, e) for e in chunk]
                body = json.dumps(events, separators=(",", ":")).encode()
                bodies.append((body, chunk, [e["id"] for e in events]))
        for body, entities, ids in bodies:
            if self._lose(client_id, group.realm_id):
                self._records.append(self._lost_record(client_id, group.realm_id, hook, entities, ids))
                continue
            headers = {
                "Content-Type": "application/json",
                "intuit-signature": sign(hook.verifier_token, body),
                "User-Agent": "qbo-sim-webhooks/1.0",
            }
            queue.append(
                _Delivery(
                    client_id,
                    group.realm_id,
                    hook.url,
                    hook.format,
                    body,
                    headers,
                    len(entities),
                    ids,
                    due_at=now,
                    changes=_changes(entities),
                )
            )

    def _lost_record(
        self, client_id: str, realm_id: str, hook: _AppHook, entities: list[dict[str, str]], ids: list[str]
    ) -> dict[str, Any]:
        """The delivery record of a notification lost on purpose (``lose_next``)."""
        return {
            "client_id": client_id,
            "realm_id": realm_id,
            "url": hook.url,
            "format": hook.format,
            "status": None,
            "attempt": 0,
            "entities": len(entities),
            "outcome": "lost",
            "time": self._clock().isoformat(),
            "event_ids": list(ids),
            "changes": _changes(entities),
        }

    @staticmethod
    def _cloudevent(client_id: str, realm_id: str, entity: dict[str, str]) -> dict[str, Any]:
        # ``source`` is opaque at Intuit ("intuit.<base64 hash>"); derive a stable one from the app.
        source = base64.b64encode(hashlib.sha256(client_id.encode()).digest()).decode()
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": f"intuit.{source}",
            "type": f"qbo.{entity['name'].lower()}.{_CE_VERBS[entity['operation']]}.v1",
            "datacontenttype": "application/json",
            "time": entity["lastUpdated"],
            "intuitentityid": entity["id"],
            "intuitaccountid": realm_id,
            "data": {},
        }

    def _drain(self, client_id: str, force_retries: bool) -> None:
        """Attempt the app's queued deliveries in order; stop at the first that fails."""
        while True:
            now = self._now()
            with self._lock:
                queue = self._queues.get(client_id)
                if not queue:
                    self._queues.pop(client_id, None)
                    return
                delivery = queue[0]
                if delivery.due_at > now and not (force_retries and delivery.attempts > 0):
                    return
            status: int | None
            error: str | None = None
            try:
                status = int(self._send(delivery.url, dict(delivery.headers), delivery.body))
            except Exception as exc:  # any transport failure is a failed attempt, as at Intuit
                status, error = None, type(exc).__name__
            ok = status is not None and 200 <= status < 300
            with self._lock:
                delivery.attempts += 1
                if ok:
                    outcome = "delivered"
                elif delivery.attempts <= len(self.retry_delays):
                    outcome = "retry_scheduled"
                    delivery.due_at = self._now() + self.retry_delays[delivery.attempts - 1]
                else:
                    outcome = "gave_up"
                record: dict[str, Any] = {
                    "client_id": delivery.client_id,
                    "realm_id": delivery.realm_id,
                    "url": delivery.url,
                    "format": delivery.format,
                    "status": status,
                    "attempt": delivery.attempts,
                    "entities": delivery.entity_count,
                    "outcome": outcome,
                    "time": self._clock().isoformat(),
                    "event_ids": list(delivery.event_ids),
                    "changes": [dict(c) for c in delivery.changes],
                }
                if error:
                    record["error"] = error
                if outcome == "retry_scheduled":
                    record["next_attempt_in_seconds"] = self.retry_delays[delivery.attempts - 1]
                self._records.append(record)
                current = self._queues.get(client_id)
                if outcome == "retry_scheduled":
                    return
                if current and current[0] is delivery:
                    current.popleft()


def _changes(entities: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"name": e["name"], "id": e["id"], "operation": e["operation"]} for e in entities]
