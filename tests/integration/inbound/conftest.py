"""The services import runs behind the admin API: the fixtures of tests/integration/errorcenter/actions."""

from tests.integration.errorcenter.actions.conftest import (
    actions_events_capture,
    api,
    env,
    stack,
    sync_events_capture,
)

__all__ = ["actions_events_capture", "api", "env", "stack", "sync_events_capture"]
