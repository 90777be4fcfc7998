"""Test SQS consumer: body "ok:*" succeeds, "fail:*" is a batch item failure, "raise:*" fails the batch."""

from stacktest import mark


def lambda_handler(event, context):
    failures = []
    for record in event["Records"]:
        body = record["body"]
        if body.startswith("raise:"):
            raise RuntimeError("whole batch fails")
        if body.startswith("fail:"):
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            mark("batch", body, size=str(len(event["Records"])))
    return {"batchItemFailures": failures}
