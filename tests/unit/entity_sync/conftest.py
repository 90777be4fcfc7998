"""The entity-sync handler builds its service at the start of each invocation: give it a deployment."""

from __future__ import annotations

import pytest

from tests.fixtures.deployment import deployed

__all__ = ["deployed"]


@pytest.fixture(autouse=True)
def _deployed(deployed: dict[str, str]) -> dict[str, str]:
    return deployed
