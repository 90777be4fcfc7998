"""The records API names every record type the sync stores (a missing one would fail response validation)."""

from qbsync.api.records_routes import EntityType
from qbsync.vocab import RECORD_TYPES


def test_the_api_entity_types_are_the_record_entity_types() -> None:
    assert set(EntityType.__args__) == set(RECORD_TYPES)  # type: ignore[attr-defined]
