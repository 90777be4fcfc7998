"""One warm Lambda "container": imports a handler once, then runs invocations read from stdin.

Started by ``local.stack.runtime`` as ``python _worker.py``. Protocol: one JSON request per stdin line
(``{"request_id", "event", "deadline_ms"}``), one JSON reply per line on the file descriptor named
by ``_LOCAL_STACK_RESULT_FD``. The handler's own stdout/stderr (Powertools logs) go to the parent,
which writes them to the function's log file. Replies follow Lambda's shapes: ``{"result": ...}``
or ``{"error": {"errorType", "errorMessage", "stackTrace"}}``.
"""

import sys

# Running this file puts local/stack on sys.path, where moto.py would shadow the real moto package.
sys.path.pop(0)

import importlib
import json
import os
import time
import traceback
from typing import Any


class LambdaContext:
    """The context object of the Python runtime (same attribute names and types)."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("_LOCAL_STACK_FUNCTION_ARN", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": message if message is not None else str(exc),
        # Like Lambda: the handler's frames only, not this worker's.
        "stackTrace": traceback.format_list(
            [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
        ),
    }


def _load_handler():  # type: ignore[no-untyped-def]
    handler = os.environ["_HANDLER"]
    module_name, _, func_name = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, _error(
            exc, "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        )
    except Exception as exc:
        return None, _error(exc)
    fn = getattr(module, func_name, None)
    if fn is None:
        return None, {
            "errorType": "Runtime.HandlerNotFound",
            "errorMessage": f"Handler '{func_name}' missing on module '{module_name}'",
            "stackTrace": [],
        }
    return fn, None


def main() -> None:
    reply = os.fdopen(int(os.environ.pop("_LOCAL_STACK_RESULT_FD")), "w", buffering=1)
    requests = sys.stdin
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the handler never reads our protocol
    handler, init_error = _load_handler()
    reply.write(json.dumps({"ready": True, "init_error": init_error}) + "\n")
    for line in requests:
        req = json.loads(line)
        if init_error is not None:
            reply.write(json.dumps({"error": init_error}) + "\n")
            continue
        context = LambdaContext(req["request_id"], req["deadline_ms"])
        out: dict[str, Any]
        cpu_started = time.process_time()
        try:
            result = handler(req["event"], context)
        except Exception as exc:
            out = {"error": _error(exc)}
        else:
            try:
                out = {"result": json.loads(json.dumps(result))}
            except (TypeError, ValueError) as exc:
                out = {"error": _error(exc, "Runtime.MarshalError", f"Unable to marshal response: {exc}")}
        sys.stdout.flush()
        sys.stderr.flush()
        # this process's CPU time (all threads, user + system) spent on the invocation, waits excluded
        out["cpu_ms"] = (time.process_time() - cpu_started) * 1000
        reply.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
