"""Fixtures of tests/integration/reconcile: ``env`` (the entity-sync handler and the admin API on moto + the
simulator, one firm; tests/integration/errorcenter/actions/conftest.py)."""

from __future__ import annotations

from tests.integration.errorcenter.actions.conftest import api, env, stack  # noqa: F401 - fixtures
