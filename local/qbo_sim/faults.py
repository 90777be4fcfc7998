"""QBO fault bodies, shaped like the real ones (QBO.md §3.2, §4.1, §4.2).

``QboFault`` is raised by the entity engine and the API layer; ``fault_body`` renders the documented
``{"Fault": {"Error": [...], "type": ...}, "time": ...}`` envelope. The 401 and throttle answers use the
gateway's own quirky shapes (lower-case JSON, XML).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VALIDATION = "ValidationFault"
SYSTEM = "SystemFault"
AUTHORIZATION = "AuthorizationFault"


@dataclass
class ErrorItem:
    code: str
    message: str
    detail: str
    element: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}


@dataclass
class QboFault(Exception):
    """A QBO business/validation error with its HTTP status and fault type."""

    code: str
    message: str
    detail: str
    element: str = ""
    status: int = 400
    fault_type: str = VALIDATION
    extra: list[ErrorItem] = field(default_factory=list)

    def __str__(self) -> str:  # pragma: no branch - trivial
        return f"{self.code} {self.message}: {self.detail}"

    def errors(self) -> list[ErrorItem]:
        return [ErrorItem(self.code, self.message, self.detail, self.element), *self.extra]

    def fault_json(self) -> dict[str, Any]:
        return {"Error": [e.as_json() for e in self.errors()], "type": self.fault_type}


def fault_body(fault: QboFault, time_text: str) -> dict[str, Any]:
    return {"Fault": fault.fault_json(), "time": time_text}


# ---- constructors for the codes the simulator raises (messages as Intuit words them) ----

OBJECT_NOT_FOUND_INACTIVE = (
    "Object Not Found : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)


def object_not_found(element: str = "") -> QboFault:
    """610: the object is deleted, inactive or was never there (QBO uses one wording for all)."""
    return QboFault("610", "Object Not Found", OBJECT_NOT_FOUND_INACTIVE, element)


def invalid_reference(element: str, ref_id: str) -> QboFault:
    return QboFault(
        "2500",
        "Invalid Reference Id",
        f"Invalid Reference Id : {element.split('.')[-1]} element id {ref_id} not found",
        element,
    )


def required_missing(name: str, element: str = "") -> QboFault:
    return QboFault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {name} is missing in the request",
        element or name,
    )


def invalid_property(detail: str, element: str = "") -> QboFault:
    return QboFault(
        "2010",
        "Request has invalid or unsupported property",
        f"Property Name:{detail} specified is unsupported or invalid",
        element,
    )


def invalid_enum(element: str, value: Any) -> QboFault:
    return QboFault("2170", "Invalid Enumeration", f"Invalid Enumeration : {value}", element)


def string_length(element: str, limit: int) -> QboFault:
    return QboFault(
        "2050",
        "String length is either shorter or longer than supported by specification",
        f"String length specified does not match the supported length. Min:0 Max:{limit} supported. "
        f"Field: {element}",
        element,
    )


def stale_object() -> QboFault:
    return QboFault(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and root were working on this at the same time. "
        "root finished before you did, so your work was not saved.",
    )


def duplicate_name(existing_id: str) -> QboFault:
    return QboFault(
        "6240", "Duplicate Name Exists Error", f"The name supplied already exists. : Id={existing_id}"
    )


def duplicate_doc_number(doc_number: str, txn_type: str, txn_id: str) -> QboFault:
    return QboFault(
        "6140",
        "Duplicate Document Number Error",
        "Duplicate Document Number Error : You must specify a different number. This number has "
        f"already been used. DocNumber={doc_number} is assigned to TxnType={txn_type} with TxnId={txn_id}",
    )


def business_validation(detail: str, element: str = "") -> QboFault:
    return QboFault(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element,
    )


def unsupported_operation(operation: str, entity: str) -> QboFault:
    return QboFault("500", "Unsupported Operation", f"Operation {operation} is not supported for {entity}.")


def system_fault() -> QboFault:
    return QboFault(
        "10000",
        "An application error has occurred while processing your request",
        "System Failure Error: An unexpected error occurred while accessing or saving your data. "
        "Please wait a few minutes and try again. If the problem persists, contact customer support.",
        status=500,
        fault_type=SYSTEM,
    )


def authentication_failed_body(detail: str, epoch_ms: int) -> dict[str, Any]:
    """The API gateway's 401 body (lower-case envelope, QBO.md §4.1)."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": detail,
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": epoch_ms,
        "status": None,
        "cdcresponse": [],
    }


WWW_AUTHENTICATE = 'Bearer realm="Intuit", error="invalid_token"'


def authorization_failed(realm_id: str) -> QboFault:
    return QboFault(
        "3100",
        "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
        f"The application is not authorized to access company {realm_id}",
        status=403,
        fault_type=AUTHORIZATION,
    )


def throttle_xml(time_text: str) -> str:
    """The 429 ThrottleExceeded body; Intuit sends XML even when JSON was asked for (QBO.md §3.2)."""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse time="{time_text}" xmlns="http://schema.intuit.com/finance/v3">\n'
        '  <Fault type="SERVICE">\n'
        '    <Error code="3001">\n'
        "      <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>\n"
        "      <Detail>The request limit was reached.  Try again later</Detail>\n"
        "    </Error>\n"
        "  </Fault>\n"
        "</IntuitResponse>\n"
    )
