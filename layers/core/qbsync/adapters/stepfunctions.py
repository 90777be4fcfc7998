"""Step Functions: the initial sync's executions and task tokens (``qbsync.initial_sync``).

Errors are translated like every AWS adapter's (:func:`qbsync.adapters._aws.translate`), with two answers
that are not failures of ours: a task token that is no longer waiting (``TaskTimedOut``,
``InvalidToken``, ``TaskDoesNotExist``) is :class:`TokenGone`, and an execution name already used
(``ExecutionAlreadyExists``) is :class:`~qbsync.errors.Conflict`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from qbsync.adapters._aws import default_client, error_code, translate
from qbsync.errors import Conflict

__all__ = ["StepFunctions", "TokenGone"]

_GONE = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


class TokenGone(Conflict):
    """The execution is no longer waiting on that task token (it timed out, was stopped, or moved on)."""

    code = "task_token_gone"


class StepFunctions:
    """Starts, stops and resumes executions. ``client``: a boto3 ``stepfunctions`` client (default: lazy)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_client("stepfunctions")
        return self._client

    def _call(self, operation: str, resource: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self.client, _snake(operation))
        try:
            answer: dict[str, Any] = method(**kwargs)
        except ClientError as exc:
            code = error_code(exc)
            if code in _GONE:
                raise TokenGone("the execution no longer waits on this task") from exc
            if code == "ExecutionAlreadyExists":
                raise Conflict("an execution with this name exists") from exc
            raise translate(exc, service="StepFunctions", operation=operation, resource=resource) from exc
        except BotoCoreError as exc:
            raise translate(exc, service="StepFunctions", operation=operation, resource=resource) from exc
        return answer

    def start(self, state_machine_arn: str, *, name: str, payload: Mapping[str, Any]) -> str:
        """Start an execution named ``name`` (unique per state machine: a repeat is Conflict); its ARN."""
        answer = self._call(
            "StartExecution",
            "state machine",
            stateMachineArn=state_machine_arn,
            name=name,
            input=json.dumps(payload, separators=(",", ":")),
        )
        return str(answer["executionArn"])

    def status(self, execution_arn: str) -> str:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED (or PENDING_REDRIVE)."""
        return str(self._call("DescribeExecution", "execution", executionArn=execution_arn)["status"])

    def stop(self, execution_arn: str, *, error: str, cause: str) -> None:
        """Stop a running execution (a stopped or finished one is left as it is)."""
        try:
            self._call("StopExecution", "execution", executionArn=execution_arn, error=error, cause=cause)
        except Conflict:
            return

    def succeed(self, token: str, output: Mapping[str, Any]) -> None:
        """Resume the execution waiting on ``token`` with ``output``. Raises TokenGone."""
        self._call(
            "SendTaskSuccess", "task", taskToken=token, output=json.dumps(output, separators=(",", ":"))
        )

    def fail(self, token: str, *, error: str, cause: str) -> None:
        """Fail the task waiting on ``token`` (its Catch decides what follows). Raises TokenGone."""
        self._call("SendTaskFailure", "task", taskToken=token, error=error, cause=cause)


def _snake(operation: str) -> str:
    out = "".join(f"_{c.lower()}" if c.isupper() else c for c in operation)
    return out.lstrip("_")
