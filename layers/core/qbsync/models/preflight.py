"""The pre-flight check's result (PRODUCT.md J.2; :mod:`qbsync.connection.preflight` makes it,
:mod:`qbsync.repositories.preflight` stores it): :class:`Finding` and :class:`PreflightResult`, with their
JSON form (:meth:`PreflightResult.to_json` / :meth:`PreflightResult.from_json`, ``format``
:data:`PREFLIGHT_FORMAT`). Finding codes, severities and fixes: docs/preflight.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args

from qbsync.errors import InfrastructureError

__all__ = [
    "PREFLIGHT_FORMAT",
    "SEVERITIES",
    "Finding",
    "PreflightResult",
    "PreflightResultInvalid",
    "Severity",
    "iso_utc",
]

Severity = Literal["warning", "blocking"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
#: ``format`` of :meth:`PreflightResult.to_json`
PREFLIGHT_FORMAT = "qbsync.preflight/1"


class PreflightResultInvalid(InfrastructureError):
    """A stored or passed-on pre-flight result is not in the shape :meth:`PreflightResult.to_json` writes."""

    code = "preflight_result_invalid"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing about the company: ``code`` (:data:`FINDING_CODES`), ``severity``, ``message`` (what
    happens, for a firm admin), ``fix`` (what to do), ``record_types`` (the record types it affects) and
    ``detail`` (non-personal values: dates, QuickBooks ids, setting paths, currencies)."""

    code: str
    severity: Severity
    message: str
    fix: str
    record_types: tuple[str, ...]
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.severity == "blocking"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "record_types": list(self.record_types),
            "detail": dict(self.detail),
        }

    @classmethod
    def from_json(cls, data: Any) -> Finding:
        if not isinstance(data, Mapping):
            raise PreflightResultInvalid("findings: each finding must be an object")
        severity = data.get("severity")
        if severity not in SEVERITIES:
            raise PreflightResultInvalid("findings.severity must be 'warning' or 'blocking'")
        types = data.get("record_types")
        detail = data.get("detail", {})
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise PreflightResultInvalid("findings.record_types must be a list of strings")
        if not isinstance(detail, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in detail.items()
        ):
            raise PreflightResultInvalid("findings.detail must map strings to strings")
        return cls(
            code=_req(data, "findings.code"),
            severity=severity,
            message=_req(data, "findings.message"),
            fix=_req(data, "findings.fix"),
            record_types=tuple(types),
            detail=dict(detail),
        )


def _req(data: Mapping[str, Any], where: str) -> str:
    value = data.get(where.rsplit(".", 1)[-1])
    if not isinstance(value, str) or not value:
        raise PreflightResultInvalid(f"{where} must be a non-empty string")
    return value


def _opt(data: Mapping[str, Any], where: str) -> str | None:
    return None if data.get(where) is None else _req(data, where)


@dataclass(frozen=True, slots=True)
class PreflightResult:
    """The outcome of one pre-flight check of one company (``checked_at``: UTC)."""

    realm_id: str
    checked_at: datetime
    company_name: str | None
    findings: tuple[Finding, ...]
    books_closed_on: date | None
    multicurrency: bool
    home_currency: str | None

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.blocking)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.blocking)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.findings)

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    def blocked_record_types(self) -> frozenset[str]:
        """The record types some blocking finding affects."""
        return frozenset(t for f in self.blocking for t in f.record_types)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (dates ISO 8601; ``checked_at`` with ``Z``)."""
        return {
            "format": PREFLIGHT_FORMAT,
            "realm_id": self.realm_id,
            "checked_at": iso_utc(self.checked_at),
            "company_name": self.company_name,
            "findings": [f.to_json() for f in self.findings],
            "books_closed_on": self.books_closed_on.isoformat() if self.books_closed_on else None,
            "multicurrency": self.multicurrency,
            "home_currency": self.home_currency,
        }

    @classmethod
    def from_json(cls, data: Any) -> PreflightResult:
        """The result :meth:`to_json` wrote. Raises PreflightResultInvalid naming the field, never a value."""
        if not isinstance(data, Mapping):
            raise PreflightResultInvalid("a pre-flight result must be an object")
        if data.get("format") != PREFLIGHT_FORMAT:
            raise PreflightResultInvalid(f"format must be {PREFLIGHT_FORMAT}")
        findings = data.get("findings")
        if not isinstance(findings, list):
            raise PreflightResultInvalid("findings must be a list")
        if not isinstance(data.get("multicurrency"), bool):
            raise PreflightResultInvalid("multicurrency must be a boolean")
        return cls(
            realm_id=_req(data, "realm_id"),
            checked_at=_parse_time(data.get("checked_at")),
            company_name=_opt(data, "company_name"),
            findings=tuple(Finding.from_json(f) for f in findings),
            books_closed_on=_parse_date(data.get("books_closed_on")),
            multicurrency=data["multicurrency"],
            home_currency=_opt(data, "home_currency"),
        )


def iso_utc(moment: datetime) -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width: sorts as text)."""
    if moment.tzinfo is None:
        raise ValueError("checked_at must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise PreflightResultInvalid("checked_at must be a date-time string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PreflightResultInvalid("checked_at must be an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise PreflightResultInvalid("checked_at must carry a UTC offset")
    return moment.astimezone(UTC)


def _parse_date(value: Any) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PreflightResultInvalid("books_closed_on must be a date string")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PreflightResultInvalid("books_closed_on must be YYYY-MM-DD") from None
