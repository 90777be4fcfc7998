"""The QBO Accounting API v3 under ``/v3/company/{realmId}/`` (QBO.md §2).

Entity CRUD (create/read/full+sparse update/delete/void), Preferences and CompanyInfo, the query
endpoint, Batch and CDC; bearer-token authentication, ``minorversion`` checks and ``requestid`` replays.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.qbo_sim import faults
from local.qbo_sim import query as qbo_query
from local.qbo_sim.clock import parse_timestamp
from local.qbo_sim.entities.engine import (
    NAME_LISTS,
    READ_ONLY,
    SINGLETONS,
    TRANSACTIONS,
    URL_NAMES,
    Change,
    Engine,
)
from local.qbo_sim.faults import QboFault
from local.qbo_sim.oauth import AuthFailure, authenticate
from local.qbo_sim.state import Company, Grant, SimState

REQUEST_ID_MAX = 50
BATCH_REQUEST_ID_MAX = 36
BATCH_MAX_ITEMS = 30
CDC_MAX_OBJECTS = 1000
CDC_WINDOW = timedelta(days=30)
CDC_UNSUPPORTED = {"TaxCode", "TaxRate", "JournalCode", "TimeActivity", "TaxAgency"}
QUERYABLE = NAME_LISTS | READ_ONLY | SINGLETONS | TRANSACTIONS
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_\-.:]+$")


def _sim(request: Request) -> SimState:
    return request.app.state.sim


class ApiContext:
    """What one authenticated v3 request works with."""

    def __init__(self, state: SimState, company: Company, grant: Grant) -> None:
        self.state = state
        self.company = company
        self.grant = grant

    def time(self) -> str:
        return self.state.clock.response_time()


def fault_response(state: SimState, fault: QboFault) -> JSONResponse:
    return JSONResponse(faults.fault_body(fault, state.clock.response_time()), fault.status)


def auth_failed_response(state: SimState, detail: str) -> JSONResponse:
    body = faults.authentication_failed_body(detail, int(state.clock.time() * 1000))
    return JSONResponse(body, 401, headers={"WWW-Authenticate": faults.WWW_AUTHENTICATE})


def _check_minor_version(state: SimState, request: Request) -> None:
    """Below 75 (or absent) is served as 75 (QBO.md §2.3); above the newest known version is refused."""
    raw = request.query_params.get("minorversion")
    if raw is None or raw == "":
        return
    if not raw.isdigit():
        raise QboFault(
            "2010",
            "Request has invalid or unsupported property",
            f"Property Name:minorversion={raw} specified is unsupported or invalid",
            "minorversion",
        )
    if int(raw) > state.config.max_minor_version:
        raise QboFault(
            "2010",
            "Request has invalid or unsupported property",
            f"Property Name:minorversion={raw} specified is unsupported or invalid. "
            f"Supported minor versions are 75 to {state.config.max_minor_version}.",
            "minorversion",
        )


def _context(request: Request) -> ApiContext | Response:
    state = _sim(request)
    realm_id = request.path_params["realm_id"]
    try:
        grant = authenticate(state, request.headers.get("authorization"))
    except AuthFailure as exc:
        return auth_failed_response(state, exc.detail)
    company = state.companies.get(realm_id)
    if grant.realm_id != realm_id or company is None:
        return fault_response(state, faults.authorization_failed(realm_id))
    request.state.client_id = grant.client_id
    try:
        _check_minor_version(state, request)
    except QboFault as fault:
        return fault_response(state, fault)
    return ApiContext(state, company, grant)


def _entity(segment: str) -> str:
    entity = URL_NAMES.get(segment.lower())
    if entity is None:
        raise QboFault(
            "500",
            "Unsupported Operation",
            f"Unsupported Operation : Operation Could not find resource for relative : /{segment}",
        )
    return entity


def _notify(state: SimState, realm_id: str, changes: list[Change]) -> None:
    notify: Callable[[str, list[Change]], None] | None = getattr(state, "notify", None)
    if notify is not None and changes:
        notify(realm_id, changes)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise QboFault("500", "Unsupported Operation", "Request body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise faults.invalid_property(
            f"Unexpected character or end of input (line {exc.lineno} column {exc.colno})", ""
        ) from None


def _request_id(request: Request, limit: int) -> str | None:
    rid = request.query_params.get("requestid")
    if rid is None:
        return None
    if not rid or len(rid) > limit or not _REQUEST_ID_RE.match(rid):
        raise QboFault(
            "2130",
            "Invalid Request Id Format",
            f"Invalid Request Id Format : requestid must be 1 to {limit} characters",
            "requestid",
        )
    return rid


def _remember(ctx: ApiContext, rid: str | None, status: int, body: dict[str, Any]) -> None:
    """Keep a successful write's answer for replays. A deep copy: the stored objects change later."""
    if rid is None or status >= 300:
        return
    store = ctx.company.request_ids
    store[rid] = (status, copy.deepcopy(body))
    while len(store) > ctx.state.config.requestid_memory:
        store.popitem(last=False)


def _replayed(ctx: ApiContext, rid: str | None, request: Request) -> Response | None:
    if rid is None:
        return None
    hit = ctx.company.request_ids.get(rid)
    if hit is None:
        return None
    request.state.replayed = True
    return JSONResponse(hit[1], hit[0])


# ---------------------------------------------------------------------------- entity endpoints


async def read_entity(request: Request) -> Response:
    ctx = _context(request)
    if isinstance(ctx, Response):
        return ctx
    try:
        entity = _entity(request.path_params["entity"])
        obj_id = request.path_params["obj_id"]
        if entity == "CompanyInfo":
            if obj_id != ctx.company.realm_id:
                raise faults.object_not_found()
            obj_id = "1"
        obj = Engine(ctx.company, ctx.state.clock).read(entity, obj_id)
    except QboFault as fault:
        return fault_response(ctx.state, fault)
    return JSONResponse({entity: obj, "time": ctx.time()})


async def read_preferences(request: Request) -> Response:
    ctx = _context(request)
    if isinstance(ctx, Response):
        return ctx
    obj = ctx.company.table("Preferences")["1"]
    return JSONResponse({"Preferences": obj, "time": ctx.time()})


def execute_write(
    ctx: ApiContext, entity: str, operation: str, body: Any, include: frozenset[str]
) -> tuple[dict[str, Any], list[Change]]:
    """Run one write; returns the wrapped response body and the changes. Raises QboFault."""
    engine = Engine(ctx.company, ctx.state.clock)
    with ctx.state.lock:
        try:
            result = _dispatch(engine, entity, operation, body, include)
        except (AttributeError, TypeError) as exc:
            # a value of the wrong JSON type deep inside the payload: QBO fails deserialization (2010)
            raise faults.invalid_property(f"{entity}: unexpected value type ({type(exc).__name__})") from exc
    return {entity: result, "time": ctx.time()}, engine.changes


def _dispatch(
    engine: Engine, entity: str, operation: str, body: Any, include: frozenset[str]
) -> dict[str, Any]:
    if operation == "delete":
        return engine.delete(entity, body)
    if operation == "void" or (operation == "update" and "void" in include):
        return engine.void(entity, body)
    if isinstance(body, dict) and body.get("Id") not in (None, ""):
        return engine.update(entity, body, include=include)
    if operation == "update" and entity in SINGLETONS:
        raise faults.required_missing("Id", "Id")
    return engine.create(entity, body, include=include)


async def write_entity(request: Request) -> Response:
    ctx = _context(request)
    if isinstance(ctx, Response):
        return ctx
    try:
        entity = _entity(request.path_params["entity"])
        rid = _request_id(request, REQUEST_ID_MAX)
        replay = _replayed(ctx, rid, request)
        if replay is not None:
            return replay
        operation = request.query_params.get("operation", "create" if entity not in SINGLETONS else "update")
        if operation not in ("create", "update", "delete", "void"):
            raise faults.invalid_enum("operation", operation)
        include = frozenset(
            part.strip().lower()
            for part in request.query_params.get("include", "").split(",")
            if part.strip()
        )
        body = await _json_body(request)
        response_body, changes = execute_write(ctx, entity, operation, body, include)
    except QboFault as fault:
        return fault_response(ctx.state, fault)
    _remember(ctx, rid, 200, response_body)
    _notify(ctx.state, ctx.company.realm_id, changes)
    return JSONResponse(response_body)


# ---------------------------------------------------------------------------- query


def run_query(ctx: ApiContext, text: str) -> dict[str, Any]:
    """Execute a QBO query; returns the ``QueryResponse`` object. Raises QboFault 4000/4001."""
    try:
        parsed = qbo_query.parse(text)
    except qbo_query.QueryError as exc:
        raise QboFault("4000", "Error parsing query", f"QueryParserError: {exc}") from None
    entity = URL_NAMES.get(str(parsed.entity).lower())
    # an entity QBO knows but the simulator does not hold (Bill, Estimate, ...) simply has no rows
    rows = list(ctx.company.table(entity).values()) if entity in QUERYABLE else []
    entity = entity or str(parsed.entity)
    try:
        result = qbo_query.execute(parsed, rows)
    except qbo_query.QueryError as exc:
        raise QboFault("4001", "Invalid query", f"QueryValidationError: {exc}") from None
    if parsed.count:
        return {"totalCount": result.total_count}
    if not result.rows:
        return {}
    return {entity: result.rows, "startPosition": result.start_position, "maxResults": len(result.rows)}


async def query_endpoint(request: Request) -> Response:
    ctx = _context(request)
    if isinstance(ctx, Response):
        return ctx
    try:
        if request.method == "GET":
            text = request.query_params.get("query", "")
        else:
            text = (await request.body()).decode("utf-8", errors="replace")
            if "json" in request.headers.get("content-type", "") and text.strip().startswith("{"):
                # some clients wrap the query as {"query": "..."}; the documented form is application/text
                with contextlib.suppress(json.JSONDecodeError, AttributeError):
                    text = str(json.loads(text).get("query", ""))
            text = text or request.query_params.get("query", "")
        if not text.strip():
            raise QboFault("4000", "Error parsing query", "QueryParserError: Encountered empty query")
        with ctx.state.lock:
            response = run_query(ctx, text)
    except QboFault as fault:
        return fault_response(ctx.state, fault)
    return JSONResponse({"QueryResponse": response, "time": ctx.time()})


# ---------------------------------------------------------------------------- batch


def _batch_item(ctx: ApiContext, item: Any, changes: list[Change]) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"Fault": faults.invalid_property("BatchItemRequest").fault_json()}
    bid = item.get("bId")
    out: dict[str, Any] = {"bId": bid}
    try:
        if not bid:
            raise faults.required_missing("bId", "bId")
        if "Query" in item:
            out["QueryResponse"] = run_query(ctx, str(item["Query"]))
            return out
        operation = item.get("operation")
        if operation not in ("create", "update", "delete"):
            raise faults.invalid_enum("operation", operation)
        entity_keys = [k for k in item if k not in ("bId", "operation", "optionsData")]
        if len(entity_keys) != 1 or URL_NAMES.get(entity_keys[0].lower()) != entity_keys[0]:
            raise faults.invalid_property(f"BatchItemRequest entity {entity_keys}", "BatchItemRequest")
        entity = entity_keys[0]
        include = frozenset({"void"}) if item.get("optionsData") == "void" else frozenset()
        body, item_changes = execute_write(ctx, entity, operation, item[entity], include)
        changes.extend(item_changes)
        out[entity] = body[entity]
    except QboFault as fault:
        out["Fault"] = fault.fault_json()
    return out


async def batch_endpoint(request: Request) -> Response:
    ctx = _context(request)
    if isinstance(ctx, Response):
        return ctx
    try:
        rid = _request_id(request, BATCH_REQUEST_ID_MAX)
        replay = _replayed(ctx, rid, request)
        if replay is not None:
            return replay
        body = await _json_body(request)
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise faults.required_missing("BatchItemRequest", "BatchItemRequest")
        if len(items) > BATCH_MAX_ITEMS:
            raise QboFault(
                "1040",
                "Batch Size Exceeded",
                f"Batch Size Exceeded : a batch request can hold at most {BATCH_MAX_ITEMS} items; "
                f"{len(items)} were sent.",
            )
        changes: list[Change] = []
        # Items run in the order given; none sees the result of another in the same batch except through
        # committed state (QBO.md §2.9: no transaction, no cross-item references).
        results = [_batch_item(ctx, item, changes) for item in items]
    except QboFault as fault:
        return fault_response(ctx.state, fault)
    response_body = {"BatchItemResponse": results, "time": ctx.time()}
    _remember(ctx, rid, 200, response_body)
    _notify(ctx.state, ctx.company.realm_id, changes)
    return JSONResponse(response_body)


# ---------------------------------------------------------------------------- CDC


def run_cdc(ctx: ApiContext, entities_param: str, changed_since: str) -> dict[str, Any]:
    if not entities_param.strip():
        raise faults.required_missing("entities", "entities")
    if not changed_since.strip():
        raise faults.required_missing("changedSince", "changedSince")
    try:
        since = parse_timestamp(changed_since)
    except ValueError:
        raise QboFault(
            "2010",
            "Request has invalid or unsupported property",
            f"Property Name:changedSince={changed_since} specified is unsupported or invalid",
            "changedSince",
        ) from None
    now = ctx.state.clock.now()
    if since < now - CDC_WINDOW:
        raise QboFault(
            "4001",
            "Invalid query",
            "QueryValidationError: changedSince cannot be more than 30 days in the past",
            "changedSince",
        )
    since_epoch = since.timestamp()
    names: list[str] = []
    for raw in entities_param.split(","):
        entity = URL_NAMES.get(raw.strip().lower())
        if entity is None or entity in CDC_UNSUPPORTED or (entity in SINGLETONS and entity != "Preferences"):
            raise QboFault(
                "4001",
                "Invalid query",
                f"QueryValidationError: CDC is not supported for entity {raw.strip()}",
                "entities",
            )
        if entity not in names:
            names.append(entity)
    touched = ctx.company.touched
    collected: list[tuple[str, list[tuple[float, dict[str, Any]]]]] = []
    total = 0
    for entity in names:
        live = [(touched.get((entity, i), 0.0), o) for i, o in ctx.company.table(entity).items()]
        gone = [(touched.get((entity, i), 0.0), o) for i, o in ctx.company.deleted.get(entity, {}).items()]
        live = sorted((t, o) for t, o in live if t >= since_epoch) if live else []
        gone = sorted((t, o) for t, o in gone if t >= since_epoch) if gone else []
        collected.append((entity, live + gone))
        total += len(live) + len(gone)
    responses = []
    remaining = CDC_MAX_OBJECTS
    for entity, rows in collected:
        taken = [o for _, o in rows[:remaining]]
        remaining -= len(taken)
        if taken:
            responses.append({entity: taken, "startPosition": 1, "maxResults": len(taken)})
        else:
            responses.append({})
    return {"CDCResponse": [{"QueryResponse": responses}], "time": ctx.time()}


async def cdc_endpoint(request: Request) -> Response:
    ctx = _context(request)
    if isinstance(ctx, Response):
        return ctx
    try:
        with ctx.state.lock:
            body = run_cdc(
                ctx, request.query_params.get("entities", ""), request.query_params.get("changedSince", "")
            )
    except QboFault as fault:
        return fault_response(ctx.state, fault)
    return JSONResponse(body)


async def unknown_v3(request: Request) -> Response:
    ctx = _context(request)
    if isinstance(ctx, Response):
        return ctx
    return fault_response(
        ctx.state,
        QboFault(
            "500",
            "Unsupported Operation",
            f"Unsupported Operation : Operation Could not find resource for relative : {request.url.path}",
        ),
    )


def routes() -> list[Route]:
    prefix = "/v3/company/{realm_id}"
    return [
        Route(prefix + "/query", query_endpoint, methods=["GET", "POST"]),
        Route(prefix + "/batch", batch_endpoint, methods=["POST"]),
        Route(prefix + "/cdc", cdc_endpoint, methods=["GET"]),
        Route(prefix + "/preferences", read_preferences, methods=["GET"]),
        Route(prefix + "/{entity}/{obj_id}", read_entity, methods=["GET"]),
        Route(prefix + "/{entity}", write_entity, methods=["POST"]),
        Route(prefix + "/{path:path}", unknown_v3, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
