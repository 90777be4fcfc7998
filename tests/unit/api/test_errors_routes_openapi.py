"""The error-center routes' OpenAPI: every route documented (summary, tag, errors), bodies strict, 202/429."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from qbsync.api import errors_routes


@pytest.fixture(scope="module")
def paths() -> dict[str, Any]:
    app = APIGatewayRestResolver(enable_validation=True)
    app.include_router(errors_routes.router)
    schema = app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True, mode="json")
    return schema["paths"]


def test_every_error_route_is_documented(paths: dict[str, Any]) -> None:
    expected = {
        ("/errors", "get"),
        ("/errors/counts", "get"),
        ("/errors/{error_id}", "get"),
        ("/errors/{error_id}/skip", "post"),
        ("/errors/{error_id}/resync", "post"),
        ("/errors/retry", "post"),
    }
    found = {(path, method) for path, ops in paths.items() for method in ops}
    assert expected <= found
    for path, method in expected:
        op = paths[path][method]
        assert op["summary"] and op["description"] and op["tags"] == ["errors"], (path, method)
        assert {"400", "401", "403", "404"} <= set(op["responses"]), (path, method)


def test_resyncs_answer_202_and_retry_all_documents_429_with_retry_after(paths: dict[str, Any]) -> None:
    for path in ("/errors/retry", "/errors/{error_id}/resync"):
        assert "202" in paths[path]["post"]["responses"]
    too_many = paths["/errors/retry"]["post"]["responses"]["429"]
    assert "Retry-After" in too_many["headers"]
    assert "409" in paths["/errors/{error_id}/skip"]["post"]["responses"]


def test_list_query_parameters_are_typed(paths: dict[str, Any]) -> None:
    params = {p["name"]: p for p in paths["/errors"]["get"]["parameters"]}
    assert set(params) == {"category", "status", "entity_type", "cursor", "limit"}
    assert params["limit"]["schema"]["maximum"] == 200 and params["limit"]["schema"]["minimum"] == 1


def test_retry_body_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError):
        errors_routes.RetryBody.model_validate({"scope": "all", "firm_id": "f-1"})
    assert (
        errors_routes.RetryBody.model_validate({"scope": "category", "category": "Taxes"}).category == "Taxes"
    )
