"""Outbound sync building blocks: firm settings, per-realm QBO reference data, and the pure mapping
of platform records to QBO payloads (:mod:`qbsync.sync.mapping`)."""

from qbsync.sync.mapping import MappingError, Resolved, dependencies, money
from qbsync.sync.reference import QboReference
from qbsync.sync.settings import FirmSyncSettings, TaxMapping

__all__ = [
    "FirmSyncSettings",
    "MappingError",
    "QboReference",
    "Resolved",
    "TaxMapping",
    "dependencies",
    "money",
]
