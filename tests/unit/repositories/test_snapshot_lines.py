"""How SnapshotStore cuts a byte stream into lines (offsets and lengths in bytes, whatever the read size) and
which ``data.id`` of a bad line it trusts; the S3 round trips are tests/integration/snapshots."""

from __future__ import annotations

import pytest
from qbsync.repositories.snapshots import _readable_id, _split

STREAM = b'{"a":1}\n\n' + "é".encode() * 3 + b"\nlast"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 1000])
def test_lines_and_their_byte_offsets_do_not_depend_on_the_read_size(size):
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    got = list(_split(chunks, 100))
    assert got == [(0, 8, b'{"a":1}\n'), (8, 1, b"\n"), (9, 7, "é".encode() * 3 + b"\n"), (16, 4, b"last")]
    assert all(STREAM[o : o + n] == raw for o, n, raw in got)


def test_a_line_over_the_limit_keeps_its_place_but_not_its_bytes():
    stream = b"x" * 50 + b"\n" + b"ok\n"
    got = list(_split([stream[i : i + 7] for i in range(0, len(stream), 7)], 10))
    assert got == [(0, 51, None), (51, 3, b"ok\n")]


def test_an_empty_stream_has_no_lines():
    assert list(_split([], 10)) == [] and list(_split([b""], 10)) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"id": "inv-1"}, "inv-1"),
        ({"id": "inv-1\n"}, None),
        ({"id": "a b"}, None),
        ({"id": "x" * 129}, None),
        ({"id": 7}, None),
        ({}, None),
        ("inv-1", None),
    ],
)
def test_only_a_well_formed_id_is_taken_from_a_bad_line(data, expected):
    assert _readable_id(data) == expected
