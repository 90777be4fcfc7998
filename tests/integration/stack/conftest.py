"""A local stack over the test-only template of this folder (generic machinery, test handlers)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from local.stack import LocalStack
from tests.fixtures.aws import REPO_ROOT

TEST_TEMPLATE = "tests/integration/stack/template.yaml"


@pytest.fixture(scope="module")
def test_stack(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(
        REPO_ROOT,
        template=TEST_TEMPLATE,
        moto_endpoint=moto_server,
        stack_name=f"stacktest-{secrets.token_hex(3)}",
        log_dir=tmp_path_factory.mktemp("logs"),
        run_pollers=False,  # tests drive pollers with poll_once(): deterministic, no waiting
        run_schedules=False,
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
