"""Platform → QuickBooks: one platform event (or a "sync this record again" command) at a time, exactly once.

:mod:`.service` orchestrates; :mod:`.mapping` is the pure platform → QBO payload mapping; :mod:`.writer` is
the one exactly-once writer; :mod:`.lookups` finds an object a lost write created.
"""
