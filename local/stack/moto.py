"""moto's server, in-process, on a free port (see docs/contracts.md and ../shared/LOCAL-AWS.md).

In-process (``ThreadedMotoServer``) so that the Lambda invoke patch of ``local.stack.runtime`` applies
to every invoke path moto has (Lambda API, Step Functions tasks).
"""

from __future__ import annotations

import logging
import os
import threading
from types import TracebackType
from typing import Any

from moto.core.config import default_user_config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

_config_lock = threading.Lock()


def configure_moto() -> None:
    """Configure this process's moto (the same effect as POSTing to /moto-api/config): Lambda without
    Docker (our runtime answers the invokes) and Step Functions that really execute their ASL."""
    with _config_lock:
        default_user_config["lambda"]["use_docker"] = False
        default_user_config["stepfunctions"]["execute_state_machine"] = True
    # The Step Functions parser and moto's werkzeug log every request/state at INFO: too noisy.
    for name in ("werkzeug", "moto.stepfunctions", "moto.stepfunctions.parser"):
        logging.getLogger(name).setLevel(logging.WARNING)


class _AtomicDynamoDB:
    """WSGI middleware: one DynamoDB request at a time.

    Real DynamoDB applies each conditional write / transaction atomically; moto's threaded server
    does not (two concurrent ``PutItem``s with ``attribute_not_exists`` can both succeed), which would
    make leases and exactly-once guards look broken locally. Only DynamoDB calls are serialised:
    SQS long polls and everything else stay concurrent.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self._lock:
            # Materialise the body inside the lock so the whole request is handled there.
            return list(self.app(environ, start_response))


class MotoServer:
    """moto's server on ``host`` and a free port (``port=0``).

    ``start()`` returns once it accepts connections and sets ``MOTO_PORT`` in this process (moto's
    Step Functions tasks call Lambda through it); ``stop()`` shuts it down. Context manager.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._server: ThreadedMotoServer | None = None
        self.port: int | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("moto server is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        if self._server is not None:
            return self
        configure_moto()
        server = ThreadedMotoServer(ip_address=self.host, port=self._requested_port, verbose=False)
        server.start()
        wsgi = server._server  # werkzeug reads .app per request, so wrapping after start applies
        assert wsgi is not None
        wsgi.app = _AtomicDynamoDB(wsgi.app)
        self._server = server
        self.port = server.get_host_and_port()[1]
        os.environ["MOTO_PORT"] = str(self.port)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        self._server = None
        if os.environ.get("MOTO_PORT") == str(self.port):
            os.environ.pop("MOTO_PORT", None)

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
