"""The error center (PRODUCT.md E): the list a firm admin works through, the actions on each error, resync
requests and their fan-out. What each error means lives in :mod:`qbsync.catalog`; its storage in
:mod:`qbsync.repositories.error_log`.
"""
