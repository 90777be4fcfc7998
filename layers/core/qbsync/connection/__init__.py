"""Connection lifecycle domain (PRODUCT.md A): connect URL, callback, company switch, disconnect, status.

See :mod:`qbsync.connection.service` for the contracts; :mod:`qbsync.wiring` builds it.
"""
