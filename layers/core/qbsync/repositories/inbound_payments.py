"""The state of each payment recorded in QuickBooks that qbsync announces to the platform (issue 14 item 3).

One item per QBO payment in the sync-state table (docs/data-model.md, "Payments recorded in QuickBooks"):

===================  =======================================================================================
attribute            meaning
===================  =======================================================================================
``pk`` / ``sk``      ``FIRM#{firm_id}#REALM#{realm_id}`` / ``INPAY#{qbo_payment_id}``
``version``          the QBO payment version this item is about: its ``SyncToken``, or ``deleted``
``version_n``        the same as a number (``deleted`` = :data:`DELETED_VERSION`, above every SyncToken):
                     the claim's guard - a version is claimed once, and never after a newer one
``state``            ``announcing`` (claimed, events not confirmed published yet), ``announced``,
                     ``withdrawn``, ``rejected`` (an error-center entry explains it), ``ignored`` (nothing
                     to announce: no synced invoice, never announced)
``final_state``      while ``announcing``: the state it ends in once the events are published
``events``           JSON list of ``{"detail_type", "detail"}``: the events of this version, with their
                     event ids, kept so that a redelivery that finds ``announcing`` publishes exactly these
``holds``            JSON list of ``{"invoice_id", "qbo_invoice_id", "amount"}``: what the platform holds of
                     this payment after this version (empty when nothing); decides ``created`` vs
                     ``updated`` and what a withdrawal undoes
``firm_id``, ``realm_id``, ``qbo_payment_id``, ``updated_at`` (epoch seconds)
===================  =======================================================================================

Exactly once per version: :meth:`InboundPayments.claim` is ONE conditional PutItem
(``attribute_not_exists(pk) OR version_n < :v``) written BEFORE anything is published; the caller
publishes, then :meth:`InboundPayments.finish` moves ``announcing`` → ``final_state``. A crash in between
leaves ``announcing``: the next delivery of that version publishes the stored events again (same event
ids: the platform dedupes) and finishes. A lost claim (another worker, or a newer version) raises nothing:
it returns None and the caller re-reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import Conflict

__all__ = [
    "ANNOUNCED",
    "ANNOUNCING",
    "DELETED_VERSION",
    "IGNORED",
    "REJECTED",
    "WITHDRAWN",
    "InboundPayments",
    "PaymentState",
    "version_number",
]

ANNOUNCING = "announcing"
ANNOUNCED = "announced"
WITHDRAWN = "withdrawn"
REJECTED = "rejected"
IGNORED = "ignored"
STATES = (ANNOUNCING, ANNOUNCED, WITHDRAWN, REJECTED, IGNORED)
#: the version number of a deletion: after every SyncToken (QBO never reuses a deleted object's id)
DELETED_VERSION = 2**53
DELETED = "deleted"
_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def version_number(version: str) -> int:
    """``SyncToken`` text (``"3"``) or ``deleted`` as the claim's ordering number. ValueError otherwise."""
    if version == DELETED:
        return DELETED_VERSION
    if not version.isdigit() or len(version) > 15:
        raise ValueError("a payment version is a SyncToken (digits) or 'deleted'")
    return int(version)


@dataclass(frozen=True, slots=True)
class PaymentState:
    firm_id: str
    realm_id: str
    qbo_payment_id: str
    version: str
    state: str
    final_state: str | None
    events: tuple[dict[str, Any], ...]
    holds: tuple[dict[str, Any], ...]

    @property
    def version_n(self) -> int:
        return version_number(self.version)


def _key(firm_id: str, realm_id: str, qbo_payment_id: str) -> dict[str, str]:
    for value, name in ((firm_id, "firm_id"), (realm_id, "realm_id"), (qbo_payment_id, "qbo_payment_id")):
        if not isinstance(value, str) or not _ID.match(value):
            raise ValueError(f"invalid {name}")
    return {"pk": f"FIRM#{firm_id}#REALM#{realm_id}", "sk": f"INPAY#{qbo_payment_id}"}


def _json_list(raw: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, str):
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        return ()
    return tuple(v for v in value if isinstance(v, dict)) if isinstance(value, list) else ()


def _state(firm_id: str, realm_id: str, item: Mapping[str, Any]) -> PaymentState:
    return PaymentState(
        firm_id=firm_id,
        realm_id=realm_id,
        qbo_payment_id=str(item.get("qbo_payment_id") or str(item["sk"]).removeprefix("INPAY#")),
        version=str(item["version"]),
        state=str(item["state"]),
        final_state=str(item["final_state"]) if item.get("final_state") else None,
        events=_json_list(item.get("events")),
        holds=_json_list(item.get("holds")),
    )


class InboundPayments:
    """``INPAY#`` items of the sync-state table (see the module doc)."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def get(self, firm_id: str, realm_id: str, qbo_payment_id: str) -> PaymentState | None:
        item = self._table.get(_key(firm_id, realm_id, qbo_payment_id), consistent=True)
        if not item:
            return None
        return _state(firm_id, realm_id, item)

    def of_realm(self, firm_id: str, realm_id: str) -> list[PaymentState]:
        """Every ``INPAY#`` item of the firm's company (one Query of its partition, paged): what the drift
        report counts on the platform's side (:mod:`qbsync.reconcile.report`)."""
        pk = _key(firm_id, realm_id, "0")["pk"]
        return [
            _state(firm_id, realm_id, item)
            for item in self._table.query(
                key_condition="pk = :pk AND begins_with(sk, :inpay)",
                values={":pk": pk, ":inpay": "INPAY#"},
            )
            if str(item.get("sk", "")).startswith("INPAY#") and item.get("version") and item.get("state")
        ]

    def claim(  # noqa: PLR0913
        self,
        firm_id: str,
        realm_id: str,
        qbo_payment_id: str,
        *,
        version: str,
        final_state: str,
        events: Sequence[Mapping[str, Any]],
        holds: Sequence[Mapping[str, Any]],
        now: float,
    ) -> PaymentState | None:
        """Claim ``version``: the claimed state when this caller holds it now (``announcing`` when there
        are events to publish, else ``final_state`` at once); None when this or a newer version was
        claimed already."""
        if final_state not in STATES or final_state == ANNOUNCING:
            raise ValueError("final_state must be a resting state")
        number = version_number(version)
        item: dict[str, Any] = {
            **_key(firm_id, realm_id, qbo_payment_id),
            "firm_id": firm_id,
            "realm_id": realm_id,
            "qbo_payment_id": qbo_payment_id,
            "version": version,
            "version_n": number,
            "state": ANNOUNCING if events else final_state,
            "events": json.dumps(list(events), separators=(",", ":"), default=str),
            "holds": json.dumps(list(holds), separators=(",", ":"), default=str),
            "updated_at": int(now),
        }
        if events:
            item["final_state"] = final_state
        try:
            self._table.put(
                item, condition="attribute_not_exists(pk) OR version_n < :v", values={":v": number}
            )
        except Conflict:
            return None
        return PaymentState(
            firm_id=firm_id,
            realm_id=realm_id,
            qbo_payment_id=qbo_payment_id,
            version=version,
            state=item["state"],
            final_state=final_state if events else None,
            events=tuple(dict(e) for e in events),
            holds=tuple(dict(h) for h in holds),
        )

    def finish(self, claimed: PaymentState, *, now: float) -> bool:
        """``announcing`` → ``claimed.final_state`` for ``claimed.version`` (after its events were
        published). False when the item moved on (a newer version was claimed meanwhile, or another
        delivery finished it first)."""
        if claimed.final_state is None:
            return False
        try:
            self._table.update(
                _key(claimed.firm_id, claimed.realm_id, claimed.qbo_payment_id),
                update="SET #s = :final, updated_at = :now REMOVE final_state",
                condition="version = :v AND #s = :announcing",
                names={"#s": "state"},
                values={
                    ":final": claimed.final_state,
                    ":now": int(now),
                    ":v": claimed.version,
                    ":announcing": ANNOUNCING,
                },
            )
        except Conflict:
            return False
        return True
