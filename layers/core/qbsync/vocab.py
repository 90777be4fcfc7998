"""The one vocabulary of qbsync: record types, their platform and QuickBooks names, and error categories.

Filled by the reshape (issue 9): every Literal, enum and lookup table of the packages derives from here.
"""
