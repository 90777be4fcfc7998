"""Generate docs/openapi.json, the admin API's OpenAPI document, from the handlers' code.

The admin API is two Lambda handlers behind one API Gateway: functions/admin_api/app.py (settings, sync
status, error center, actions: the ``qbsync.api`` routers) and functions/oauth/app.py (``/connection*`` and
``/oauth/callback``). Each is a Powertools resolver whose routes carry their pydantic models, summaries,
tags and error responses; this script asks both for their OpenAPI schema and merges them into ONE
document (paths and component schemas; a component defined differently by the two is an error).

Request validation failures are answered 400 by both handlers (never 422), so Powertools' generated 422
responses are dropped. An optional body (``Model | None``) is documented as the object it is when sent, not
as "object or null": a body is a JSON object or absent (qbsync.api.common.body_problem refuses ``null``).
Keys are sorted and the file ends with a newline, so the output is stable.

Usage:
  python scripts/gen_openapi.py            # (re)write docs/openapi.json  (make openapi)
  python scripts/gen_openapi.py --check    # exit 1 when docs/openapi.json differs from the code (make lint)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))

from aws_lambda_powertools.event_handler.openapi.models import Server, ServerVariable  # noqa: E402

OUTPUT = ROOT / "docs" / "openapi.json"
HANDLERS = ("admin_api", "oauth")
TITLE = "qbsync admin API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Admin API of qbsync: the QuickBooks Online connection, sync settings, sync status, the error center "
    "and record actions. Every route but /oauth/callback needs the platform's admin JWT as a bearer token; "
    'the firm and the role come from the token only. Errors are {"error": code, "message": text}, a 5xx also '
    'with "request_id". A request body is a JSON object of at most 256 KiB nested at most 32 levels. '
    "See docs/admin-api.md."
)
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256 admin JWT signed by the platform (claims sub, firm_id, role, iss, aud, exp)",
    }
}
SERVERS = [
    Server(
        url="https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
        description="the AdminApiUrl output of the deployed stack",
        variables={
            "api_id": ServerVariable(default="abc123", description="API Gateway REST API id"),
            "region": ServerVariable(default="us-east-1"),
            "stage": ServerVariable(default="dev", description="the Stage parameter"),
        },
    )
]


def load_app(name: str) -> Any:
    """The ``app`` resolver of functions/<name>/app.py (imported as Lambda would, without env reads)."""
    module_name = f"openapi_{name}_app"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load functions/{name}/app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # pydantic resolves the route annotations in the module's namespace
    spec.loader.exec_module(module)
    return module.app


def schema_of(app: Any) -> dict[str, Any]:
    # operationId = the route function's name (Powertools' default appends the path and method); the
    # resolver keeps its routes in these two lists, the ones its own get_openapi_schema walks.
    for route in app._dynamic_routes + app._static_routes:
        route.operation_id = route.func.__name__
    raw = app.get_openapi_json_schema(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        servers=SERVERS,
        security_schemes=SECURITY_SCHEMES,
        security=[{"bearerAuth": []}],
    )
    doc: dict[str, Any] = json.loads(raw)
    return doc


def _drop_422(doc: dict[str, Any]) -> None:
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)


def _object_bodies(doc: dict[str, Any]) -> None:
    """``anyOf [Model, null]`` request bodies -> ``Model``: an optional body is absent, never ``null``."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            body = operation.get("requestBody", {}) if isinstance(operation, dict) else {}
            for media in body.get("content", {}).values():
                branches = media.get("schema", {}).get("anyOf", [])
                objects = [b for b in branches if b != {"type": "null"}]
                if len(branches) == 2 and len(objects) == 1:
                    media["schema"] = objects[0]


def _unused_components(doc: dict[str, Any]) -> None:
    """Drop component schemas nothing references any more (Powertools' 422 models)."""
    schemas = doc.get("components", {}).get("schemas", {})
    while True:
        text = json.dumps({k: v for k, v in doc.items() if k != "components"}) + json.dumps(schemas)
        unused = [name for name in schemas if f'"#/components/schemas/{name}"' not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One document: the first one's info/servers/security plus every path and component schema."""
    merged = {k: v for k, v in docs[0].items() if k not in ("paths", "components")}
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    operation_ids: set[str] = set()
    for doc in docs:
        for path, operations in doc.get("paths", {}).items():
            for method, operation in operations.items():
                if method in paths.get(path, {}):
                    raise SystemExit(f"{method.upper()} {path} is defined by two handlers")
                if operation["operationId"] in operation_ids:
                    raise SystemExit(f"two routes are named {operation['operationId']}: rename one function")
                operation_ids.add(operation["operationId"])
                paths.setdefault(path, {})[method] = operation
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                raise SystemExit(f"component schema {name!r} differs between handlers: rename one model")
            schemas[name] = schema
    merged["paths"] = paths
    merged["components"] = {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES}
    _drop_422(merged)
    _object_bodies(merged)
    _unused_components(merged)
    return merged


def render() -> str:
    document = merge([schema_of(load_app(name)) for name in HANDLERS])
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail when docs/openapi.json is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(
                "docs/openapi.json is out of date with the handlers' routes: run `make openapi`",
                file=sys.stderr,
            )
            return 1
        print("docs/openapi.json is up to date")
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(json.loads(text)['paths'])} paths)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
