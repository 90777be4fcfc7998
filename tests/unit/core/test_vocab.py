"""qbsync.vocab: the record types and error categories every table of the packages derives from."""

from __future__ import annotations

import pytest
from qbsync import vocab
from qbsync.catalog import category_for_entity
from qbsync.models.platform_events import PlatformEvent
from qbsync.outbound.lookups import SUPPORTED_ENTITIES
from qbsync.outbound.mapping import marker, parse_marker


def _platform_entities() -> set[str]:
    todo, seen = [PlatformEvent], set()
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        entity = cls.__dict__.get("ENTITY")
        if isinstance(entity, str):
            seen.add(entity)
    return seen


def test_every_platform_entity_of_the_events_is_in_the_vocabulary() -> None:
    entities = _platform_entities()
    assert entities == set(vocab.PLATFORM_ENTITIES)
    # every one syncs outbound as its record type, except contacts (they sync inbound)
    assert {e for e in entities if vocab.RECORD_TYPE_OF.get(e) is None} == {"Contact"}


@pytest.mark.parametrize("record_type", vocab.RECORD_TYPES)
def test_every_name_of_a_record_type_has_its_catalogue_category(record_type: str) -> None:
    info = vocab.RECORD_TYPE_INFO[record_type]
    names = [record_type, info.marker, *info.qbo_entities]
    if info.platform_entity:
        names.append(info.platform_entity)
    assert {name: category_for_entity(name) for name in names} == dict.fromkeys(names, info.category)
    assert vocab.record_error_category(record_type) == info.category.lower()


@pytest.mark.parametrize("record_type", vocab.RECORD_TYPES)
def test_every_record_type_can_be_found_again_in_quickbooks(record_type: str) -> None:
    info = vocab.RECORD_TYPE_INFO[record_type]
    assert set(info.qbo_entities) <= set(SUPPORTED_ENTITIES)  # find_existing can look each one up
    assert parse_marker(marker(info.marker, "p_1")) == (info.marker, "p_1")


def test_syncable_types_and_events_agree() -> None:
    assert set(vocab.SYNCABLE_TYPES) <= set(vocab.RECORD_TYPES)
    for record_type in vocab.SYNCABLE_TYPES:
        entity = vocab.RECORD_TYPE_INFO[record_type].platform_entity
        assert entity is not None
        assert vocab.RECORD_TYPE_OF[entity] == record_type
        assert vocab.EVENT_ENTITY_OF[record_type] == entity
    assert set(vocab.NAME_LISTS) == {"client_account", "service"}
    assert set(vocab.MAPPING_CATEGORIES) == set(vocab.ERROR_CATEGORIES) - {"Contacts", "Connection"}


def test_the_id_patterns_agree_on_the_id_characters():
    """Three patterns, one alphabet: every id the platform sends is also a record id and a user id."""
    import re

    from qbsync import vocab

    for sample in ("acct-100", "inv_1.a:b", "A" * vocab.ID_MAX_LENGTH):
        assert re.fullmatch(vocab.ID_PATTERN, sample)
        assert re.fullmatch(vocab.RECORD_ID_PATTERN, sample)
        assert re.fullmatch(vocab.USER_ID_PATTERN, sample)
    for bad in ("a#b", "a/b", "a b", "é", "A" * (vocab.ID_MAX_LENGTH + 1)):
        assert not re.fullmatch(vocab.RECORD_ID_PATTERN, bad)
        assert not re.fullmatch(vocab.USER_ID_PATTERN, bad)
    assert re.fullmatch(vocab.RECORD_ID_PATTERN, "req@1") and not re.fullmatch(vocab.ID_PATTERN, "req@1")
