"""Initial-sync runs on moto's SyncStateTable (template.yaml), with Step Functions and the bus faked at their
ports: these tests are about the run's state transitions; the state machine itself runs in tests/e2e."""

from __future__ import annotations

from tests.integration.repositories.conftest import clock, records, table  # noqa: F401 - fixtures
