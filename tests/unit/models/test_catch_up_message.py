"""CatchUpQueue bodies (qbsync.models.messages.CatchUpRequest): round trip and field-named refusals."""

from __future__ import annotations

import json

import pytest
from qbsync.errors import MalformedMessage
from qbsync.models.messages import CATCH_UP_KIND, CatchUpRequest, parse_catch_up_message


def test_a_request_round_trips() -> None:
    request = CatchUpRequest(firm_id="f_1", reason="on_demand", request_id="r-1", requested_by="u_2")
    assert parse_catch_up_message(request.body()) == request
    assert parse_catch_up_message(json.loads(request.body())) == request
    scheduled = CatchUpRequest(firm_id="f_1", reason="scheduled", request_id="evt")
    assert "requested_by" not in json.loads(scheduled.body())


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ({"kind": "other"}, "kind"),
        ({"kind": CATCH_UP_KIND, "firm_id": "f#1", "reason": "scheduled", "request_id": "r"}, "firm_id"),
        ({"kind": CATCH_UP_KIND, "firm_id": "f_1", "reason": "hourly", "request_id": "r"}, "reason"),
        ({"kind": CATCH_UP_KIND, "firm_id": "f_1", "reason": "scheduled"}, "request_id"),
        ({"kind": CATCH_UP_KIND, "firm_id": "f_1", "reason": "scheduled", "request_id": "r", "x": 1}, "x"),
    ],
)
def test_a_malformed_body_is_refused_naming_the_field(body: object, named: str) -> None:
    with pytest.raises(MalformedMessage) as err:
        parse_catch_up_message(body if isinstance(body, str) else json.dumps(body))
    assert named in err.value.message
    assert "f#1" not in err.value.message and "hourly" not in err.value.message
