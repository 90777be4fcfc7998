"""Test REQUEST authorizer: "Bearer allow" allows, "Bearer deny" denies, anything else is Unauthorized."""


def lambda_handler(event, context):
    token = (event.get("headers") or {}).get("Authorization", "")
    if token == "Bearer allow":
        effect = "Allow"
    elif token == "Bearer deny":
        effect = "Deny"
    else:
        raise Exception("Unauthorized")
    return {
        "principalId": "user-1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}],
        },
        "context": {"firm_id": "firm-1", "user_id": "user-1", "role": "owner"},
    }
