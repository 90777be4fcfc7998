"""moto's server, in-process, on a free port (see docs/contracts.md and ../shared/LOCAL-AWS.md).

In-process (``ThreadedMotoServer``) so that the Lambda invoke patch of ``local.stack.runtime`` applies
to every invoke path moto has (Lambda API, Step Functions tasks).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections import Counter
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import jsonpath_ng.ext
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
    _memoize_jsonpath()


def _memoize_jsonpath() -> None:
    """Parse each JSONPath expression once in this process.

    moto's EventBridge renders every event it delivers to every matching target through
    ``EventTemplateParser.parse``, which calls ``jsonpath_ng.ext.parse`` on its eight default input paths
    (``$.detail``, ``$.id``, ...) each time; jsonpath_ng builds a yacc parser per call. At the initial
    sync's volume that was ~30 % of the moto process's CPU (py-spy, 2026-12-07), so the local stack, not
    QuickBooks, bounded the bench. A parsed expression is immutable (``find`` reads only its argument),
    so one parse per distinct expression gives moto exactly the same results.
    """
    with _config_lock:
        parse = jsonpath_ng.ext.parse
        if not hasattr(parse, "cache_info"):
            jsonpath_ng.ext.parse = functools.lru_cache(maxsize=4096)(parse)


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


_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")
_APP_ID = re.compile(r"(?:^| )app/([A-Za-z0-9_.-]+)")
#: who sent a request the counter saw when it names no function (the local stack itself, tests, the demo)
STACK_CALLER = "local-stack"


class RequestCounter:
    """WSGI middleware: counts every AWS request moto receives by (caller, service, operation).

    *caller* is the Lambda function that sent it - the local runtime gives each worker
    ``AWS_SDK_UA_APP_ID=<LogicalId>``, which botocore puts in the User-Agent as ``app/<LogicalId>`` - or
    :data:`STACK_CALLER` for everything else (the SQS pollers standing in for event-source mappings, the
    EventBridge router, tests and the demo). *service* is the SigV4 credential scope's; *operation* is
    ``X-Amz-Target``'s (JSON protocols: DynamoDB, SQS, KMS, EventBridge, Secrets Manager) or the
    ``Action`` of a query-protocol request. ``bench/bench_costs.py`` reads it; counting is a dict
    increment under a lock, so it is always on.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self._count(environ)
        return self.app(environ, start_response)

    def _count(self, environ: dict[str, Any]) -> None:
        scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if scope is None:  # moto's own API (/moto-api), health checks
            return
        app = _APP_ID.search(environ.get("HTTP_USER_AGENT", ""))
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            operation = target.rsplit(".", 1)[-1]
        else:
            action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
            operation = action[0] if action else environ.get("REQUEST_METHOD", "?")
        key = (app.group(1) if app else STACK_CALLER, scope.group(1), operation)
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> Counter[tuple[str, str, str]]:
        """A copy of the counts so far (subtract two snapshots to count what happened in between)."""
        with self._lock:
            return Counter(self._counts)


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
        #: every AWS request this server received, by caller, service and operation (set by start())
        self.counter: RequestCounter | None = None

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
        self.counter = RequestCounter(_AtomicDynamoDB(wsgi.app))
        wsgi.app = self.counter
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
