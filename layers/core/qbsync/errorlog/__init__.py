"""The error center's log: explanations of sync errors (:mod:`.catalog`) and their storage
(:mod:`.repository`).

``ErrorLogRepository(table).record(...)`` upserts the one open error of a record; ``explain(error)`` says
what an error means for the firm admin and how to fix it.
"""

from qbsync.errorlog.catalog import CATEGORIES, Explanation, category_for_entity, explain
from qbsync.errorlog.repository import STATUSES, ErrorEntry, ErrorLogRepository

__all__ = [
    "CATEGORIES",
    "STATUSES",
    "ErrorEntry",
    "ErrorLogRepository",
    "Explanation",
    "category_for_entity",
    "explain",
]
