"""Fixtures of tests/integration/reconcile: the admin API and the entity-sync worker on moto + the simulator
(``env``, tests/integration/errorcenter/actions)."""

from tests.integration.errorcenter.actions.conftest import api, env, stack

__all__ = ["api", "env", "stack"]
