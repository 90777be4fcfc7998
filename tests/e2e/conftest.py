"""Fixtures every e2e module shares. Each module defines its own ``firm_id`` fixture (a fresh firm)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.platform import StatusInbox


@pytest.fixture
def status_inbox(local_stack: Any, firm_id: str) -> Iterator[StatusInbox]:
    """The platform's subscription to ``firm_id``'s "Sync Status Changed" events, closed after the test."""
    inbox = StatusInbox(local_stack, firm_id)
    try:
        yield inbox
    finally:
        inbox.close()
