"""Shared fixtures live in plugin modules, one per part of the local world."""

import pytest

pytest_plugins = ["tests.fixtures.aws", "tests.fixtures.events", "tests.fixtures.qbo_sim"]


_IN_PROCESS_MOTO = "unit"
_SHARED_MOTO_SERVER = ("integration", "e2e")


def _layers(config: pytest.Config) -> set[str]:
    """Which test layers (unit / integration / e2e) the command line selects."""
    tests = config.rootpath / "tests"
    found: set[str] = set()
    for arg in config.args or ["."]:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == tests or tests.is_relative_to(path):
            found.update({_IN_PROCESS_MOTO, *_SHARED_MOTO_SERVER})
        elif path.is_relative_to(tests):
            found.add(path.relative_to(tests).parts[0])
    return found


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a session that mixes unit tests with integration/e2e tests.

    Unit tests use moto in-process (``mock_aws``); entering it resets moto's process-wide state, and with it
    the resources of the moto server (same process) that integration and e2e tests share - which then fail
    far from the cause. ``make test`` runs the two groups in separate sessions.
    """
    layers = _layers(config)
    if _IN_PROCESS_MOTO in layers and layers.intersection(_SHARED_MOTO_SERVER):
        raise pytest.UsageError(
            "run tests/unit apart from tests/integration and tests/e2e (unit tests reset the in-process moto "
            "state the shared moto server lives in); `make test` does both, one session each"
        )
