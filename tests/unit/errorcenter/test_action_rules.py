"""Pure rules of the admin actions: new customer names, request bodies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from qbsync.api.actions_routes import CopyServicesBody, CreateCustomerBody
from qbsync.errorcenter.actions import valid_display_name
from qbsync.errors import BadRequest


@pytest.mark.parametrize("name", ["Stripe (client)", "  Émile & Fils  ", "x" * 100])
def test_valid_display_names_are_trimmed(name: str) -> None:
    assert valid_display_name(name) == name.strip()


@pytest.mark.parametrize("name", ["", "   ", "a:b", "tab\there", "two\nlines", "cr\rhere", "x" * 101])
def test_invalid_display_names_are_refused(name: str) -> None:
    with pytest.raises(BadRequest):
        valid_display_name(name)


def test_request_bodies_refuse_bad_input_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        CreateCustomerBody.model_validate({"display_name": "secret: name"})
    assert "secret" not in str(caught.value.errors(include_input=False))
    with pytest.raises(ValidationError):
        CreateCustomerBody.model_validate({"display_name": "ok", "other": 1})
    assert CreateCustomerBody.model_validate({}).display_name is None
    with pytest.raises(ValidationError):
        CopyServicesBody.model_validate({"qbo_item_ids": ["12", "ab"]})
    with pytest.raises(ValidationError):
        CopyServicesBody.model_validate({"qbo_item_ids": [str(i) for i in range(101)]})
