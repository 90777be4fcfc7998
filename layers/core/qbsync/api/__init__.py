"""The admin API's routes, as Powertools ``Router`` objects the ``AdminApiFunction`` handler includes.

One module per area, each exporting ``router = Router()``: :mod:`~qbsync.api.settings_routes`,
:mod:`~qbsync.api.records_routes` (sync status), :mod:`~qbsync.api.errors_routes` (error center) and
:mod:`~qbsync.api.actions_routes` (manual sync and error fixes). :mod:`~qbsync.api.common` holds what
they share: the caller, the error body model and the documented 4xx responses.
"""
