"""The services import runs behind the admin API: the fixtures of tests/integration/errorcenter/actions."""

from tests.integration.errorcenter.actions.conftest import api, env, stack

__all__ = ["api", "env", "stack"]
