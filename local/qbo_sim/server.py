"""``SimulatorServer``: the simulator on uvicorn in a background thread (tests, demo, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from local.qbo_sim.app import create_app
from local.qbo_sim.clock import SimClock
from local.qbo_sim.config import SimConfig


class SimulatorServer:
    """Run the simulator on ``host:port`` (port 0 picks a free port).

    ``start()`` returns once the server accepts connections (raises RuntimeError if it cannot start
    within 10 s); ``stop()`` shuts it down. Usable as a context manager.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimClock | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.host = host
        self.clock = clock or SimClock()
        self.app = create_app(self.config, self.clock)
        # IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto is TCP,
        # and without it every response stalls ~40 ms on delayed ACKs.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state(self):  # type: ignore[no-untyped-def]
        """The in-process SimState (for benchmarks and white-box checks)."""
        return self.app.state.sim

    def start(self) -> SimulatorServer:
        if self._thread is not None:
            return self
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        sock = self._sock
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="qbo-sim", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("QBO simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        self._server = None
        self._sock.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
