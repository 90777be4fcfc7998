"""The demo's initial-sync section (``local.demo_history``): what it copies from qbsync stays equal to it,
the progress board stays readable in a log, and its QuickBooks-against-snapshot check catches a cent and a
record written twice. (The section itself runs in tests/e2e/test_demo.py.)"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from qbsync.models.record_key import marker, note_of, parse_marker
from qbsync.vocab import INITIAL_SYNC_PHASES, PHASE_RECORD_TYPE

from local import demo_history
from local.demo_history import ProgressBoard, progress_line


def _phase(name: str, status: str, planned: int, **counts: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"phase": name, "status": status, "planned": planned}
    for key in ("done", "skipped", "failed", "blocked", "changed"):
        row[key] = counts.get(key, 0)
    finished = sum(row[k] for k in ("done", "skipped", "failed", "blocked", "changed"))
    row.update(
        remaining=planned - finished, rate_per_minute=counts.get("rate"), eta_seconds=counts.get("eta")
    )
    return row


def test_the_phases_are_qbsyncs_in_order() -> None:
    assert tuple(demo_history.PHASES) == INITIAL_SYNC_PHASES
    assert demo_history.PHASES == PHASE_RECORD_TYPE


def test_the_marker_pattern_reads_qbsyncs_markers() -> None:
    for entity, qbo_entity in (("Invoice", "Invoice"), ("ClientAccount", "Customer"), ("Service", "Item")):
        note = f"Imported; {marker(entity, 'inv-1.a:2')}"
        field = demo_history._NOTE_FIELD.get(qbo_entity, "PrivateNote")
        obj = {field: note}
        assert note_of(qbo_entity, obj) == note
        assert demo_history._marker(qbo_entity, obj) == parse_marker(note) == (entity, "inv-1.a:2")


def test_a_bar_shows_done_failed_blocked_and_remaining() -> None:
    line = progress_line(_phase("invoices", "running", 10, done=4, failed=1, blocked=1, rate=60.0, eta=4), 10)
    assert line.startswith("invoices  [####x!....]    6/10")
    assert "failed 1 blocked 1 remaining 4" in line and "60/min" in line and "ETA 4s" in line
    # a failure among many records still shows, and nothing remaining shows no remaining cell
    ended = progress_line(_phase("invoices", "completed", 62, done=57, skipped=3, failed=1, blocked=1), 24)
    assert "[" + "#" * 22 + "x!]   62/62" in ended
    empty = progress_line(_phase("refunds", "completed", 0), 10)
    assert "[----------]" in empty and "nothing to sync" in empty


def test_in_a_log_each_change_is_a_line_throttled_and_the_end_always_printed() -> None:
    out = io.StringIO()
    board = ProgressBoard(out=out, tty=False, min_interval=2.0)
    board.update([_phase("services", "running", 10, done=1)], now=0.0)
    board.update([_phase("services", "running", 10, done=1)], now=3.0)  # unchanged: no line
    board.update([_phase("services", "running", 10, done=2)], now=3.5)
    board.update([_phase("services", "running", 10, done=3)], now=4.0)  # under 2 s since the last: none
    board.update([_phase("services", "completed", 10, done=10), _phase("customers", "pending", 5)], now=4.1)
    board.update([_phase("services", "completed", 10, done=10)], now=9.0)  # already ended: none
    board.update([_phase("fees", "running", 4, done=1, rate=10.0, eta=18)], now=10.0)
    board.update([_phase("fees", "running", 4, done=1, rate=8.0, eta=22)], now=13.0)  # rate/ETA only: none
    board.update([_phase("fees", "running", 4, done=4)], now=16.0)  # nothing remaining: the end follows
    board.update([_phase("fees", "completed", 4, done=4)], now=16.5)
    board.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split("]")[1].split()[0] for line in lines] == ["1/10", "2/10", "10/10", "1/4", "4/4"]
    assert lines[2].endswith("complete") and lines[-1].endswith("complete")


def test_on_a_terminal_the_running_phase_is_redrawn_in_place() -> None:
    out = io.StringIO()
    board = ProgressBoard(out=out, tty=True)
    board.update([_phase("fees", "running", 4, done=1)], now=0.0)
    board.update([_phase("fees", "running", 4, done=2)], now=0.1)
    board.update([_phase("fees", "completed", 4, done=4)], now=0.2)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("complete\x1b[K\n")


def _landed(amounts: dict[str, str], twice: tuple[str, ...] = ()) -> demo_history._Landed:
    landed = demo_history._Landed()
    for pid, amount in amounts.items():
        landed.amounts[("Invoice", pid)] = Decimal(amount)
        landed.markers[("Invoice", "Invoice", pid)] += 2 if pid in twice else 1
    return landed


ROWS = [
    {"id": "inv-1", "total": "100.10"},
    {"id": "inv-2", "total": "50.00"},
    {"id": "inv-3", "total": "9.99"},
]
PLAN = {"invoice": {"record_type": "invoice", "create_amount": "150.10", "skip_amount": "9.99"}}


def test_the_money_check_reconciles_landed_and_not_landed_with_the_manifest() -> None:
    check = demo_history._money_check(
        "invoice", ROWS, Decimal("160.09"), PLAN, _landed({"inv-1": "100.10", "inv-2": "50.00"})
    )
    assert check.problems == [] and check.not_landed == ["inv-3"]
    assert (check.landed, check.landed_total, check.missing_total) == (2, Decimal("150.10"), Decimal("9.99"))


def test_the_money_check_catches_a_cent_a_stray_object_and_a_wrong_manifest() -> None:
    off = demo_history._money_check(
        "invoice", ROWS, Decimal("160.09"), PLAN, _landed({"inv-1": "100.11", "inv-2": "50.00"})
    )
    assert any("inv-1: QuickBooks 100.11, snapshot 100.10" in p for p in off.problems)
    stray = demo_history._money_check(
        "invoice", ROWS, Decimal("160.09"), PLAN, _landed({"inv-1": "100.10", "inv-9": "1.00"})
    )
    assert any("not in the snapshot" in p for p in stray.problems)
    wrong = demo_history._money_check(
        "invoice", ROWS, Decimal("160.10"), PLAN, _landed({"inv-1": "100.10", "inv-2": "50.00"})
    )
    assert any("!= manifest 160.10" in p for p in wrong.problems)
