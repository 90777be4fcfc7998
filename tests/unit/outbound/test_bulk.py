"""BulkRunner's chunk rules (qbsync.outbound.bulk): what it refuses before any record runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from qbsync.models.platform_events import PlatformEvent, parse_platform_event
from qbsync.outbound.bulk import MAX_CHUNK, BulkRunner

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "platform"


def _event(sample: str, *, firm: str = "firm-1", record_id: str | None = None) -> PlatformEvent:
    envelope = json.loads((SAMPLES / f"{sample}.json").read_text())
    envelope["detail"]["firm_id"] = firm
    if record_id is not None:
        envelope["detail"]["data"]["id"] = record_id
    return parse_platform_event(envelope)


def _never(*_: Any) -> Any:
    raise AssertionError("no worker may be built for a refused chunk")


@pytest.mark.parametrize(
    ("chunk", "problem"),
    [
        ([], "at least one"),
        (
            [
                _event("client_account_created", firm="a"),
                _event("client_account_created", firm="b", record_id="x"),
            ],
            "one firm",
        ),
        ([_event("client_account_created"), _event("service_created")], "one synced record type"),
        ([_event("contact_created")], "one synced record type"),
        ([_event("client_account_created"), _event("client_account_created")], "each record once"),
        ([_event("client_account_created", record_id=f"a{i}") for i in range(MAX_CHUNK + 1)], "at most"),
    ],
)
def test_a_chunk_that_breaks_the_rules_is_refused_before_anything_runs(
    chunk: list[PlatformEvent], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        BulkRunner(_never).run(chunk)


@pytest.mark.parametrize("workers", [0, 31])
def test_workers_are_bounded_by_one_batch_call(workers: int) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        BulkRunner(_never, max_workers=workers)
