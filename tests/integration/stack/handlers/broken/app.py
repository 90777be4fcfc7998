"""Test handler whose module cannot be imported (the runtime reports Runtime.ImportModuleError)."""

import qbsync_no_such_module  # noqa: F401


def lambda_handler(event, context):
    return {}
