"""A firm's sync settings (PRODUCT.md B): item ``FIRM#{firm_id}`` / ``SETTINGS`` of the sync-state table.

The settings are stored as one JSON string (``settings``) validated by
:class:`~qbsync.models.firm_settings.FirmSyncSettings` on every read and write, plus ``updated_at``.
A firm without the item gets the product defaults (optionally seeded with what the owner chose before
consent, which the connection item keeps: ``sync_accounts`` and ``sync_start_date``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from qbsync.adapters.dynamodb import DynamoTable
from qbsync.errors import DataError
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.record_key import check_id
from qbsync.repositories._ddb import as_float

__all__ = ["SK_SETTINGS", "FirmSettingsRepository", "InvalidSettings"]

SK_SETTINGS = "SETTINGS"
#: connection settings (chosen before consent) that seed the defaults of a firm without a SETTINGS item
_SEED_FIELDS = ("sync_accounts", "sync_start_date")


class InvalidSettings(DataError):
    """The stored settings item does not validate (it was written by something else, or corrupted)."""

    code = "settings_invalid"


def _key(firm_id: str) -> dict[str, str]:
    check_id(firm_id, "firm_id")
    return {"pk": f"FIRM#{firm_id}", "sk": SK_SETTINGS}


def _problems(exc: ValidationError) -> str:
    # field paths and messages only: the pydantic text embeds values
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:10]
    )


class FirmSettingsRepository:
    """Reads and writes :class:`FirmSyncSettings` (``SYNC_TABLE_NAME``)."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def find(self, firm_id: str) -> FirmSyncSettings | None:
        """The stored settings, or None when the firm has none.

        Raises:
            InvalidSettings: the stored item does not validate (names the fields, never the values).
            ValueError: invalid ``firm_id``.
        """
        item = self._table.get(_key(firm_id), consistent=True)
        if not item:
            return None
        raw = item.get("settings")
        try:
            data = json.loads(raw) if isinstance(raw, str) else None
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise InvalidSettings("the stored sync settings are not a JSON object", firm_id=firm_id)
        try:
            return FirmSyncSettings.model_validate(data)
        except ValidationError as exc:
            raise InvalidSettings(
                f"the stored sync settings are invalid: {_problems(exc)}", firm_id=firm_id
            ) from None

    def get(self, firm_id: str, *, seed: Mapping[str, Any] | None = None) -> FirmSyncSettings:
        """The stored settings, else the defaults (``seed``'s ``sync_accounts``/``sync_start_date`` applied).

        ``seed`` is typically :attr:`Connection.settings` (what the owner chose before consent); invalid
        seed values are ignored (defaults win) rather than blocking the sync.

        Raises:
            InvalidSettings: the stored item does not validate.
        """
        found = self.find(firm_id)
        if found is not None:
            return found
        chosen = {k: seed[k] for k in _SEED_FIELDS if seed and seed.get(k) is not None}
        if chosen:
            try:
                return FirmSyncSettings.model_validate(chosen)
            except ValidationError:
                pass  # a malformed pre-consent choice must not stop the sync: fall back to the defaults
        return FirmSyncSettings()

    def put(self, firm_id: str, settings: FirmSyncSettings, *, now: float) -> None:
        """Store ``settings`` whole (last writer wins; settings are edited by one admin at a time)."""
        if not isinstance(settings, FirmSyncSettings):
            raise TypeError("put takes a FirmSyncSettings")
        self._table.put(
            {
                **_key(firm_id),
                "firm_id": firm_id,
                "settings": settings.model_dump_json(),
                "updated_at": now,
            }
        )

    def updated_at(self, firm_id: str) -> float | None:
        """When the settings were last stored (None when the firm has none)."""
        item = self._table.get(_key(firm_id), consistent=True, attributes=["updated_at"])
        return as_float(item.get("updated_at")) if item else None
