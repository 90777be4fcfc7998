"""The local stack's teardown: a caller that went away and a worker still logging after stop are quiet and
lose no log line (the bench's 10k run printed two tracebacks at its end, 2026-12-08)."""

from __future__ import annotations

import io
from http.client import HTTPMessage
from pathlib import Path
from types import SimpleNamespace

from local.stack.api_gateway import _RequestHandler
from local.stack.runtime import _FunctionPool


class _GoneClient(io.RawIOBase):
    """A socket file whose peer closed the connection."""

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def _handler(wfile: io.RawIOBase, answered: list[str]) -> _RequestHandler:
    handler = _RequestHandler.__new__(_RequestHandler)
    headers = HTTPMessage()
    headers["Content-Length"] = "0"
    handler.headers = headers
    handler.rfile = io.BytesIO()
    handler.wfile = wfile  # type: ignore[assignment]
    handler.command, handler.path, handler.request_version = "GET", "/dev/initial-sync", "HTTP/1.1"
    handler.requestline = "GET /dev/initial-sync HTTP/1.1"
    handler.client_address = ("127.0.0.1", 50000)
    handler.close_connection = False

    def handle(method: str, path: str, *rest: object) -> tuple[int, list[tuple[str, str]], bytes]:
        answered.append(f"{method} {path}")
        return 200, [("Content-Type", "application/json")], b"{}"

    handler.gateway = SimpleNamespace(handle=handle)  # type: ignore[assignment]
    return handler


def test_a_caller_that_closed_the_connection_ends_the_request_without_a_traceback() -> None:
    answered: list[str] = []
    handler = _handler(_GoneClient(), answered)
    handler._serve()  # raised BrokenPipeError out of the server thread before
    assert answered == ["GET /dev/initial-sync"]
    assert handler.close_connection is True


def test_the_answer_reaches_a_caller_that_is_still_there() -> None:
    out = io.BytesIO()
    handler = _handler(out, [])
    handler._serve()
    assert out.getvalue().startswith(b"HTTP/1.1 200")
    assert out.getvalue().endswith(b"\r\n\r\n{}")
    assert handler.close_connection is False


def test_a_line_logged_after_the_pool_stopped_is_kept_in_its_log_file(tmp_path: Path) -> None:
    runtime = SimpleNamespace(log_dir=tmp_path, echo=None)
    pool = _FunctionPool(runtime, SimpleNamespace(logical_id="InboundWorkerFunction"))  # type: ignore[arg-type]
    pool.write_log("before stop")
    pool.stop()
    pool.write_log("after stop")  # ValueError: I/O operation on closed file, before
    assert (tmp_path / "InboundWorkerFunction.log").read_text().splitlines() == ["before stop", "after stop"]
