"""Test proxy handler: echoes what it received; /bad returns a malformed proxy result."""

import base64
import json
import os


def lambda_handler(event, context):
    if event["resource"] == "/bad":
        return {"statusCode": "not a number"}
    body = {
        "resource": event["resource"],
        "path": event["path"],
        "method": event["httpMethod"],
        "pathParameters": event["pathParameters"],
        "queryStringParameters": event["queryStringParameters"],
        "multiValueQueryStringParameters": event["multiValueQueryStringParameters"],
        "header": (event["headers"] or {}).get("X-Test"),
        "body": event["body"],
        "isBase64Encoded": event["isBase64Encoded"],
        "authorizer": event["requestContext"].get("authorizer"),
        "stage": event["requestContext"]["stage"],
        "sourceIp": event["requestContext"]["identity"]["sourceIp"],
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env_stage": os.environ["STAGE"],
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
    }
    return {
        "statusCode": 201 if event["httpMethod"] == "POST" else 200,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "isBase64Encoded": True,
    }
