"""The retry fan-out on moto: the shared error-center fixtures (tests/integration/errorcenter/conftest.py)."""

from tests.integration.errorcenter.conftest import estack

__all__ = ["estack"]
