"""One parser for every form of QuickBooks error response, and one mapping to the qbsync error tree.

Forms handled (QBO.md §3.2, §4.1):

* the documented JSON envelope ``{"Fault": {"Error": [{"Message","Detail","code","element"}], "type"}}``,
  also inside HTTP 200 bodies and batch items;
* the gateway's lower-case ``{"fault": {"error": [{"message","detail","code"}], "type": "AUTHENTICATION"}}``
  (its ``detail`` echoes part of the access token: it is dropped, never stored or logged);
* XML ``<IntuitResponse><Fault type><Error code><Message/><Detail/></Error></Fault></IntuitResponse>``
  (throttles, some gateway errors) - parsed with a regular expression, never an XML parser, so no
  entity expansion can happen;
* non-JSON bodies (HTML from proxies on 502/503/504, empty bodies) - classified by status alone.

Mapping (QBO.md §4.2, §4.3), first match wins:

==============================================================  =========================================
429, code 3001, or ``ThrottleExceeded``/``003001`` in any body  :class:`Throttled` (``retry_after`` from the
(even a 403 or XML one)                                         ``Retry-After`` header, else 60 s)
401, an AUTHENTICATION fault, code 3200/100                     :class:`ReconnectRequired` (the client has
                                                                already refreshed once when it gets here)
403 AuthorizationFault, code 3100/120                           :class:`ReconnectRequired`
5xx, SystemFault, code 10000 or 150 (maintenance)               :class:`ServiceUnavailable` on reads,
                                                                :class:`UncertainOutcome` on writes
code 600 (duplicate request id)                                 :class:`UncertainOutcome` (look it up)
code 610                                                        :class:`QboObjectNotFound`
code 5010                                                       :class:`StaleObject`
any other Fault                                                 :class:`QboValidationError`
404 without a Fault                                             :class:`ConfigurationError` (wrong base URL)
any other status without a Fault                                :class:`QboValidationError`
==============================================================  =========================================

Every error carries ``realm_id``, ``entity``, ``qbo_code``, ``qbo_detail`` (QBO's ``Detail``, which may carry
``Id=``/``TxnId=`` of an existing object; it may hold client data, so it is NOT part of ``str(err)`` or
``err.context()``), ``intuit_tid`` (response header) and, in ``err.extra``, ``element``, ``fault_type`` and
``qbo_status`` (the HTTP status QBO answered). The error's own ``http_status`` stays the qbsync API's.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any

import requests

from qbsync.errors import (
    ConfigurationError,
    QboObjectNotFound,
    QboValidationError,
    QbsyncError,
    ReconnectRequired,
    ServiceUnavailable,
    StaleObject,
    Throttled,
    UncertainOutcome,
)
from qbsync.qbo.http import parse_retry_after

#: Intuit asks for a 60 s pause after a throttle when no Retry-After is given (QBO.md §3.2).
DEFAULT_THROTTLE_WAIT = 60.0

_THROTTLE_CODES = frozenset({"3001"})
_AUTHENTICATION_CODES = frozenset({"3200", "100", "110"})
_AUTHORIZATION_CODES = frozenset({"3100", "120"})
_SYSTEM_CODES = frozenset({"10000", "150"})
_THROTTLE_TEXT = re.compile(r"throttleexceeded|errorcode=0*3001\b|source=throttling policy", re.IGNORECASE)
_ERROR_CODE_IN_MESSAGE = re.compile(r"errorCode=0*(\d+)", re.IGNORECASE)
_MAX_MESSAGE = 200


@dataclass(frozen=True)
class FaultError:
    """One ``Error`` of a Fault. ``code`` is normalised (no leading zeros: ``003200`` → ``3200``)."""

    code: str | None
    message: str | None
    detail: str | None
    element: str | None


@dataclass(frozen=True)
class ParsedFault:
    fault_type: str | None
    errors: tuple[FaultError, ...]

    @property
    def first(self) -> FaultError | None:
        return self.errors[0] if self.errors else None

    def codes(self) -> set[str]:
        return {e.code for e in self.errors if e.code}


# ---------------------------------------------------------------------------- parsing


def _get(mapping: dict[str, Any], name: str) -> Any:
    """Case-insensitive key lookup (``Fault``/``fault``, ``Message``/``message``, ...)."""
    if name in mapping:
        return mapping[name]
    lowered = name.lower()
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _normalise_code(code: Any, message: str | None) -> str | None:
    text = _text(code)
    if text is None and message:
        found = _ERROR_CODE_IN_MESSAGE.search(message)
        text = found.group(1) if found else None
    if text is None:
        return None
    return (text.lstrip("0") or "0") if text.isdigit() else text


def parse_fault_object(fault: Any) -> ParsedFault | None:
    """Parse the inside of a Fault (``{"Error": [...], "type": ...}``) as found in bodies and batch items."""
    if not isinstance(fault, dict):
        return None
    raw_errors = _get(fault, "Error")
    if isinstance(raw_errors, dict):
        raw_errors = [raw_errors]
    errors: list[FaultError] = []
    for raw in raw_errors if isinstance(raw_errors, list) else []:
        if not isinstance(raw, dict):
            continue
        message = _text(_get(raw, "Message"))
        errors.append(
            FaultError(
                code=_normalise_code(_get(raw, "code"), message),
                message=message,
                detail=_text(_get(raw, "Detail")),
                element=_text(_get(raw, "element")),
            )
        )
    return ParsedFault(fault_type=_text(_get(fault, "type")), errors=tuple(errors))


def parse_fault_json(body: Any) -> ParsedFault | None:
    """The Fault of a parsed JSON body (either case), or None when the body carries none."""
    if not isinstance(body, dict):
        return None
    fault = _get(body, "Fault")
    if fault is None:
        return None
    return parse_fault_object(fault)


_XML_FAULT = re.compile(r"<Fault\b([^>]*)>(.*?)</Fault>", re.DOTALL | re.IGNORECASE)
_XML_ERROR = re.compile(r"<Error\b([^>]*)>(.*?)</Error>", re.DOTALL | re.IGNORECASE)
_XML_ATTR = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def _xml_child(block: str, tag: str) -> str | None:
    found = re.search(rf"<{tag}\b[^>]*>(.*?)</{tag}>", block, re.DOTALL | re.IGNORECASE)
    return _text(html.unescape(found.group(1))) if found else None


def parse_fault_xml(text: str) -> ParsedFault | None:
    """The Fault of an XML ``IntuitResponse`` body, or None."""
    fault_match = _XML_FAULT.search(text)
    if fault_match is None:
        return None
    fault_attrs = {k.lower(): v for k, v in _XML_ATTR.findall(fault_match.group(1))}
    errors = []
    for attrs_text, block in _XML_ERROR.findall(fault_match.group(2)):
        attrs = {k.lower(): html.unescape(v) for k, v in _XML_ATTR.findall(attrs_text)}
        message = _xml_child(block, "Message")
        errors.append(
            FaultError(
                code=_normalise_code(attrs.get("code"), message),
                message=message,
                detail=_xml_child(block, "Detail"),
                element=_text(attrs.get("element")),
            )
        )
    return ParsedFault(fault_type=_text(fault_attrs.get("type")), errors=tuple(errors))


def parse_fault(response: requests.Response) -> ParsedFault | None:
    """The Fault of any response body (JSON in either case, or XML), or None if it has none."""
    text = response.text or ""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return parse_fault_json(json.loads(stripped))
        except ValueError:
            return None
    if stripped.startswith("<"):
        return parse_fault_xml(stripped)
    return None


def intuit_tid_of(response: requests.Response) -> str | None:
    """Intuit's transaction id (``intuit_tid`` header; quote it to Intuit support)."""
    return response.headers.get("intuit_tid") or response.headers.get("intuit-tid")


# ---------------------------------------------------------------------------- mapping


def _safe_message(text: str | None) -> str:
    if not text:
        return ""
    one_line = " ".join(text.split())
    return one_line[:_MAX_MESSAGE]


def error_from_fault(  # noqa: C901, PLR0913
    fault: ParsedFault | None,
    *,
    status: int | None,
    realm_id: str | None,
    entity: str | None = None,
    is_write: bool = False,
    intuit_tid: str | None = None,
    retry_after: float | None = None,
    raw_text: str = "",
) -> QbsyncError:
    """Map a parsed Fault (or None) plus the HTTP status to the qbsync error tree (table in the module doc).

    ``status`` is None for a batch item (its own Fault, inside an HTTP 200). ``raw_text`` is only
    searched for throttle markers; it is never copied into the error.
    """
    first = fault.first if fault else None
    codes = fault.codes() if fault else set()
    fault_type = (fault.fault_type or "").lower() if fault else ""
    what = f"{entity} request" if entity else "request"
    where = f"QuickBooks ({status})" if status is not None else "QuickBooks"
    common: dict[str, Any] = {"realm_id": realm_id, "entity": entity, "intuit_tid": intuit_tid}
    extra: dict[str, Any] = {"qbo_status": status}
    if fault is not None and fault.fault_type:
        extra["fault_type"] = fault.fault_type
    if first is not None and first.element:
        extra["element"] = first.element
    code = first.code if first else None
    qbo_message = _safe_message(first.message if first else None)
    suffix = f": {qbo_message} [code {code}]" if qbo_message or code else ""

    messages_text = " ".join(e.message or "" for e in fault.errors) if fault else ""
    if status == 429 or codes & _THROTTLE_CODES or _THROTTLE_TEXT.search(messages_text or raw_text or ""):
        wait = retry_after if retry_after is not None else DEFAULT_THROTTLE_WAIT
        return Throttled(
            f"{where} throttled the {what}; retry after {wait:g}s{suffix}",
            retry_after=wait,
            qbo_code=code or "3001",
            **common,
            **extra,
        )

    # The authentication fault's Detail echoes part of the token: never keep it.
    if status == 401 or "authentication" in fault_type or codes & _AUTHENTICATION_CODES:
        return ReconnectRequired(
            f"{where} rejected the authorization of the {what}; the firm must reconnect QuickBooks{suffix}",
            qbo_code=code,
            **common,
            **extra,
        )
    if "authorization" in fault_type or codes & _AUTHORIZATION_CODES:
        return ReconnectRequired(
            f"{where} denied access to the company for the {what}; reconnect QuickBooks{suffix}",
            qbo_code=code,
            qbo_detail=first.detail if first else None,
            **common,
            **extra,
        )

    detail = first.detail if first else None
    if (status is not None and status >= 500) or "system" in fault_type or codes & _SYSTEM_CODES:
        if is_write:
            return UncertainOutcome(
                f"{where} failed while handling the {what}; it may or may not have been applied{suffix}",
                qbo_code=code,
                qbo_detail=detail,
                **common,
                **extra,
            )
        return ServiceUnavailable(
            f"{where} is unavailable for the {what}{suffix}",
            retry_after=retry_after,
            qbo_code=code,
            qbo_detail=detail,
            **common,
            **extra,
        )

    if fault is not None:
        if "600" in codes:
            return UncertainOutcome(
                f"{where} reports a duplicate request id for the {what}: an earlier attempt may have been "
                f"applied; look the object up{suffix}",
                qbo_code="600",
                qbo_detail=detail,
                **common,
                **extra,
            )
        if "610" in codes:
            return QboObjectNotFound(
                f"{where} could not find an object used by the {what} (deleted or inactive){suffix}",
                qbo_code="610",
                qbo_detail=detail,
                **common,
                **extra,
            )
        if "5010" in codes:
            return StaleObject(
                f"{where} rejected the {what}: stale SyncToken, re-read and resend{suffix}",
                qbo_code="5010",
                qbo_detail=detail,
                **common,
                **extra,
            )
        return QboValidationError(
            f"{where} rejected the {what}{suffix}", qbo_code=code, qbo_detail=detail, **common, **extra
        )

    if status == 404:
        return ConfigurationError(
            f"{where} answered 404 without a Fault for the {what}: check the QuickBooks API base URL",
            **common,
            **extra,
        )
    return QboValidationError(f"{where} rejected the {what} without a Fault body", **common, **extra)


def error_from_response(
    response: requests.Response,
    *,
    realm_id: str | None,
    entity: str | None = None,
    is_write: bool = False,
) -> QbsyncError:
    """The qbsync error for a failed QuickBooks API response (any body form; see the module doc).

    ``is_write`` decides whether a 5xx/SystemFault is an :class:`UncertainOutcome` (a create, update,
    delete, void or batch may have been applied) or a :class:`ServiceUnavailable` (reads, queries, CDC).
    """
    return error_from_fault(
        parse_fault(response),
        status=response.status_code,
        realm_id=realm_id,
        entity=entity,
        is_write=is_write,
        intuit_tid=intuit_tid_of(response),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        raw_text=(response.text or "")[:4096],
    )
