"""The local Lambda runtime: real handlers in warm worker processes, invoked as Lambda invokes them.

Each function gets a pool of persistent worker processes ("containers": imported once, reused,
one invocation at a time each; a busy pool grows up to ``max_concurrency``). A worker's environment
is the function's resolved template environment plus what Lambda sets (AWS_REGION,
AWS_LAMBDA_FUNCTION_NAME, …), ``AWS_ENDPOINT_URL`` pointing at moto and fake credentials.
An invocation that outlives the function's Timeout kills its worker, as Lambda does.

``install_moto_patch()`` routes moto's own Lambda invokes (Lambda API, Step Functions tasks) to the
runtime registered for that function, so every invoke path runs the same code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from local.stack.moto import FAKE_CREDENTIALS
from local.stack.provision import FunctionSpec, Resources

log = logging.getLogger("local.stack.runtime")

_WORKER = Path(__file__).with_name("_worker.py")
_INIT_TIMEOUT_SECONDS = 60  # Lambda's init phase may take up to 10 s; imports here are slower on 2 cores
_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT")


class FunctionError(Exception):
    """An invocation ended in a function error (Lambda's ``X-Amz-Function-Error: Unhandled``).

    ``error`` is Lambda's error payload: ``errorType``, ``errorMessage``, ``stackTrace``.
    """

    def __init__(self, function: str, error: dict[str, Any]) -> None:
        self.function = function
        self.error = error
        super().__init__(f"{function}: {error.get('errorType')}: {error.get('errorMessage')}")


class UnknownFunctionError(KeyError):
    """No function with that logical id, name or ARN in the stack."""


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one invocation: ``payload`` (the handler's JSON result) or ``error``."""

    function: str
    request_id: str
    payload: Any
    error: dict[str, Any] | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_error(self) -> Any:
        """Return the payload, or raise FunctionError if the invocation failed."""
        if self.error is not None:
            raise FunctionError(self.function, self.error)
        return self.payload


class _Worker:
    """One worker process and the threads that read its replies and its log output."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], log_sink: Callable[[str], None]) -> None:
        self.spec = spec
        read_fd, write_fd = os.pipe()
        env = {**env, "_LOCAL_STACK_RESULT_FD": str(write_fd)}
        self.proc = subprocess.Popen(  # noqa: S603 - our own worker script
            [sys.executable, str(_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(spec.code_dir),
            pass_fds=(write_fd,),
            # Own session: a terminal's Ctrl-C reaches the stack, which stops its workers itself.
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        os.close(write_fd)
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reply_stream: IO[str] = os.fdopen(read_fd, "r", encoding="utf-8")
        threading.Thread(target=self._read_replies, daemon=True, name=f"reply-{spec.logical_id}").start()
        threading.Thread(
            target=self._read_logs, args=(log_sink,), daemon=True, name=f"log-{spec.logical_id}"
        ).start()
        self.init_error: dict[str, Any] | None = None

    def _read_replies(self) -> None:
        try:
            for line in self._reply_stream:
                self._replies.put(json.loads(line))
        except (OSError, ValueError):
            pass
        finally:
            self._replies.put(None)  # the worker exited

    def _read_logs(self, sink: Callable[[str], None]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            sink(line.rstrip("\n"))

    def wait_ready(self, timeout: float) -> None:
        try:
            msg = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise RuntimeError(
                f"{self.spec.logical_id}: worker did not start within {timeout:.0f} s"
            ) from None
        if msg is None:
            raise RuntimeError(f"{self.spec.logical_id}: worker exited during init (see its log)")
        self.init_error = msg.get("init_error")

    def invoke(self, request_id: str, event: Any, timeout_s: float) -> tuple[dict[str, Any], bool]:
        """Run one event; returns (reply, worker_still_usable)."""
        deadline = time.time() + timeout_s
        req = {"request_id": request_id, "event": event, "deadline_ms": int(deadline * 1000)}
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._exit_error(request_id), False
        try:
            msg = self._replies.get(timeout=max(0.0, deadline - time.time()) + 0.05)
        except queue.Empty:
            self.kill()
            return {
                "error": {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": (
                        f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
                    ),
                }
            }, False
        if msg is None:
            return self._exit_error(request_id), False
        return msg, True

    def _exit_error(self, request_id: str) -> dict[str, Any]:
        code = self.proc.wait(timeout=5)
        return {
            "error": {
                "errorType": "Runtime.ExitError",
                "errorMessage": (
                    f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
                ),
            }
        }

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        finally:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def stop(self) -> None:
        """Ask the worker to finish (stdin EOF), then kill it if it does not."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class _FunctionPool:
    def __init__(self, runtime: LambdaRuntime, spec: FunctionSpec) -> None:
        self.runtime = runtime
        self.spec = spec
        self.idle: list[_Worker] = []
        self.count = 0
        self.cond = threading.Condition()
        self.log_lock = threading.Lock()
        #: invocations answered and the CPU milliseconds the workers spent on them (``cpu_ms`` replies)
        self.invocations = 0
        self.cpu_ms = 0.0
        self.log_path = runtime.log_dir / f"{spec.logical_id}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("a", encoding="utf-8")

    def write_log(self, line: str) -> None:
        with self.log_lock:
            if self._log_file.closed:
                # a worker still answering when the runtime stopped: its last lines go to the file too
                with self.log_path.open("a", encoding="utf-8") as late:
                    late.write(line + "\n")
            else:
                self._log_file.write(line + "\n")
                self._log_file.flush()
        if self.runtime.echo is not None:
            self.runtime.echo(f"[{self.spec.logical_id}] {line}")

    def acquire(self) -> _Worker:
        with self.cond:
            while True:
                if self.runtime.stopped:
                    raise RuntimeError("the local Lambda runtime is stopped")
                while self.idle:
                    worker = self.idle.pop()
                    if worker.alive():
                        return worker
                    self.count -= 1
                if self.count < self.runtime.max_concurrency:
                    self.count += 1
                    break
                self.cond.wait(timeout=1)
        try:
            worker = _Worker(self.spec, self.runtime.worker_env(self.spec), self.write_log)
            worker.wait_ready(_INIT_TIMEOUT_SECONDS)
        except Exception:
            self.release(None)
            raise
        return worker

    def release(self, worker: _Worker | None) -> None:
        with self.cond:
            if worker is not None and worker.alive() and not self.runtime.stopped:
                self.idle.append(worker)
            else:
                self.count -= 1
                if worker is not None:
                    worker.kill()
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            workers, self.idle = self.idle, []
            self.cond.notify_all()
        for worker in workers:
            worker.stop()
        with self.log_lock:
            self._log_file.close()


def _forced_env(resources: Resources) -> dict[str, str]:
    return {
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": resources.endpoint_url,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }


def lambda_environment(resources: Resources, spec: FunctionSpec | str) -> dict[str, str]:
    """What a function sees in ``os.environ`` on Lambda, locally: Lambda's reserved variables, the
    template's resolved ``Environment``, then ``AWS_ENDPOINT_URL`` (moto) and fake credentials.

    ``spec`` is a FunctionSpec or a logical id (KeyError if the stack has no such function). Tests use
    this to run a handler in-process with the same environment as the template gives it.
    """
    if isinstance(spec, str):
        spec = resources.functions[spec]
    region = resources.region
    lambda_env = {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "TZ": ":UTC",
        # No X-Ray daemon locally; the template may still turn tracing on explicitly.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    return {**lambda_env, **spec.environment, **_forced_env(resources)}


class LambdaRuntime:
    """Runs the stack's functions. ``invoke(function, event)`` → InvokeResult.

    ``function`` is a logical id, a function name or an ARN. ``echo`` (e.g. ``print``) also receives
    every log line, prefixed with the logical id. Logs go to ``log_dir/<LogicalId>.log``.
    """

    def __init__(
        self,
        resources: Resources,
        log_dir: str | Path,
        echo: Callable[[str], None] | None = None,
        max_concurrency: int = 10,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.resources = resources
        self.log_dir = Path(log_dir)
        self.echo = echo
        self.max_concurrency = max_concurrency
        self.extra_env = dict(extra_env or {})
        self.stopped = False
        self._pools = {lid: _FunctionPool(self, spec) for lid, spec in resources.functions.items()}

    def worker_env(self, spec: FunctionSpec) -> dict[str, str]:
        """The environment a worker of ``spec`` runs with (Lambda's variables, then the template's)."""
        base = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        worker = {
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "_LOCAL_STACK_FUNCTION_ARN": spec.arn,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join([str(spec.code_dir), *(str(d) for d in spec.layer_dirs)]),
            # botocore adds "app/<id>" to its User-Agent: moto's RequestCounter attributes requests by it
            "AWS_SDK_UA_APP_ID": spec.logical_id,
        }
        env = lambda_environment(self.resources, spec)
        return {**base, **worker, **env, **self.extra_env, **_forced_env(self.resources)}

    def spec(self, function: str) -> FunctionSpec:
        if function in self.resources.functions:
            return self.resources.functions[function]
        spec = self.resources.function_by_name(function)
        if spec is None:
            raise UnknownFunctionError(function)
        return spec

    def invoke(self, function: str, event: Any, request_id: str | None = None) -> InvokeResult:
        """Invoke synchronously (RequestResponse). Never raises for function errors: see ``.error``.

        Raises UnknownFunctionError for a function not in the stack and RuntimeError when the runtime
        is stopped or a worker cannot start.
        """
        spec = self.spec(function)
        pool = self._pools[spec.logical_id]
        request_id = request_id or str(uuid.uuid4())
        worker = pool.acquire()
        started = time.monotonic()
        pool.write_log(f"START RequestId: {request_id} Version: $LATEST")
        reply = None
        usable = False
        try:
            if worker.init_error is not None:
                reply, usable = {"error": worker.init_error}, False
            else:
                reply, usable = worker.invoke(request_id, event, spec.timeout)
        finally:
            pool.release(worker if usable else None)
        duration = (time.monotonic() - started) * 1000
        with pool.cond:
            pool.invocations += 1
            cpu_ms = reply.get("cpu_ms")
            pool.cpu_ms += float(cpu_ms) if isinstance(cpu_ms, (int, float)) else 0.0
        pool.write_log(f"END RequestId: {request_id}")
        pool.write_log(
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\tMemory Size: {spec.memory_size} MB"
        )
        error = reply.get("error")
        if error is not None:
            error = {**error, "requestId": request_id}
            pool.write_log(f"ERROR {error.get('errorType')}: {error.get('errorMessage')}")
        return InvokeResult(spec.logical_id, request_id, reply.get("result"), error, duration)

    def invoke_async(self, function: str, event: Any, retries: int = 2) -> threading.Thread:
        """Invoke like an asynchronous (Event) invocation: in the background, retried on error."""
        spec = self.spec(function)

        def run() -> None:
            for _attempt in range(retries + 1):
                if self.stopped:
                    return
                try:
                    result = self.invoke(spec.logical_id, event)
                except RuntimeError:
                    return
                if result.ok:
                    return

        thread = threading.Thread(target=run, daemon=True, name=f"async-{spec.logical_id}")
        thread.start()
        return thread

    def prewarm(self) -> None:
        """Start one worker per function now, in parallel (the first invocations skip the cold start).
        Raises RuntimeError if a worker cannot start."""
        errors: list[BaseException] = []

        def warm(pool: _FunctionPool) -> None:
            try:
                pool.release(pool.acquire())
            except RuntimeError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=warm, args=(pool,), daemon=True) for pool in self._pools.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def cpu_usage(self) -> dict[str, tuple[int, float]]:
        """Per logical id: (invocations answered, CPU ms the workers spent in them; init excluded)."""
        usage = {}
        for lid, pool in self._pools.items():
            with pool.cond:
                usage[lid] = (pool.invocations, pool.cpu_ms)
        return usage

    def log_path(self, function: str) -> Path:
        return self._pools[self.spec(function).logical_id].log_path

    def stop(self) -> None:
        self.stopped = True
        for pool in self._pools.values():
            pool.stop()


# -- moto: route its Lambda invokes to the runtime ----------------------------------------------------
_registry_lock = threading.Lock()
_registry: list[LambdaRuntime] = []
_patched = False


def register(runtime: LambdaRuntime) -> None:
    """Let moto's Lambda invokes of this runtime's functions reach it (see install_moto_patch)."""
    install_moto_patch()
    with _registry_lock:
        _registry.append(runtime)


def unregister(runtime: LambdaRuntime) -> None:
    with _registry_lock:
        if runtime in _registry:
            _registry.remove(runtime)


def _find(function_name: str) -> tuple[LambdaRuntime, FunctionSpec] | None:
    with _registry_lock:
        runtimes = list(_registry)
    for rt in reversed(runtimes):
        spec = rt.resources.function_by_name(function_name)
        if spec is not None and not rt.stopped:
            return rt, spec
    return None


def install_moto_patch() -> None:
    """Replace ``LambdaSimpleBackend.invoke`` (moto without Docker) by a call into our runtime.

    Functions no registered runtime knows keep moto's echo behaviour. A function error sets
    ``x-amz-function-error: Unhandled``, so callers (boto3, Step Functions Retry/Catch) see it.
    """
    global _patched
    with _registry_lock:
        if _patched:
            return
        from moto.awslambda_simple.models import LambdaSimpleBackend

        original = LambdaSimpleBackend.invoke

        def invoke(self, function_name, qualifier, body, headers, response_headers):  # type: ignore[no-untyped-def]
            found = _find(function_name)
            if found is None:
                return original(self, function_name, qualifier, body, headers, response_headers)
            runtime, spec = found
            raw = body.decode() if isinstance(body, bytes) else (body or "")
            try:
                event = json.loads(raw) if raw else {}
            except ValueError:
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(
                    {
                        "errorType": "InvalidRequestContentException",
                        "errorMessage": "Could not parse request body into json",
                    }
                ).encode()
            if (headers or {}).get("X-Amz-Invocation-Type") == "Event":
                runtime.invoke_async(spec.logical_id, event)
                return b""
            result = runtime.invoke(spec.logical_id, event)
            if result.error is not None:
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(result.error).encode()
            return json.dumps(result.payload).encode()

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
        _patched = True
