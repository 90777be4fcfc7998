"""The retry fan-out on moto: the shared error-center fixtures (tests/integration/errorlog/conftest.py)."""

from tests.integration.errorlog.conftest import estack, events_capture

__all__ = ["estack", "events_capture"]
