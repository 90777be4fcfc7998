"""Shared fixtures live in plugin modules, one per part of the local world."""

pytest_plugins = ["tests.fixtures.aws", "tests.fixtures.qbo_sim"]
