"""Test echo: records the event kind and returns the event; "sleep" exceeds the timeout;
"rendezvous" waits for concurrent invocations."""

import os
import pathlib
import time

from stacktest import mark


def lambda_handler(event, context):
    if event.get("kind") == "sleep":
        time.sleep(5)
    if event.get("kind") == "rendezvous":
        # Returns only once `count` invocations are inside the handler at the same time.
        folder = pathlib.Path(event["dir"])
        (folder / context.aws_request_id).touch()
        while len(list(folder.iterdir())) < event["count"]:
            time.sleep(0.01)
        return {"pid": os.getpid()}
    if event.get("kind") == "error":
        raise ValueError("echo was asked to fail")
    kind = event.get("kind") or event.get("detail-type") or "unknown"
    mark("echo", context.aws_request_id, kind=str(kind), source=str(event.get("source", "")))
    return {"echo": event, "request_id": context.aws_request_id}
