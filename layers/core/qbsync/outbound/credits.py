"""Credit payments: applying a credit-balance payment's CreditMemo to its invoices, exactly once.

A payment from client credit becomes a CreditMemo (the payment record); once it is in QBO, a zero-total
Payment linking the CreditMemo and the invoices applies it
(:func:`~qbsync.outbound.mapping.credit_application_payload`), written through the exactly-once writer as
its own record (entity type ``credit_application``, same platform id and version), so redelivery, a crash
or a second worker never applies it twice. A redelivered, already synced credit payment checks the
application and writes it if it is missing. A failed application is reported on the payment in the error
center (a resync of the payment retries it). Deleting the payment deletes the application first.

:class:`CreditApplier` does this for :class:`~qbsync.outbound.service.SyncService`. Log lines keep the
logger ``qbsync.outbound.service``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from qbsync import vocab
from qbsync.errors import DataError
from qbsync.models.firm_settings import FirmSyncSettings
from qbsync.models.platform_events import Payment
from qbsync.outbound import mapping
from qbsync.outbound.gate import DependencyGate
from qbsync.outbound.job import Job, Outcome, forced, log_context
from qbsync.outbound.lookups import find_existing
from qbsync.outbound.mapping import Resolved
from qbsync.outbound.status import StatusReporter
from qbsync.outbound.writer import ExactlyOnceWriter
from qbsync.qbo.client import QboClient
from qbsync.qbo.reference import QboReference, ReferenceCache
from qbsync.repositories.connections import Connection
from qbsync.repositories.firm_settings import FirmSettingsRepository
from qbsync.repositories.records import SYNCED, RecordsRepository, SyncRecord

__all__ = ["CreditApplier"]

logger = logging.getLogger("qbsync.outbound.service")


class CreditApplier:
    """Writes, checks and deletes the application of credit payments (see the module doc).

    Args:
        records: the records repository.
        settings: firm settings repository.
        references: the per-realm reference cache.
        gate: the prerequisites of the payment (:class:`~qbsync.outbound.gate.DependencyGate`).
        status: reports a failed application (:class:`~qbsync.outbound.status.StatusReporter`).
        writer: the exactly-once writer for a QBO client.
    """

    def __init__(
        self,
        *,
        records: RecordsRepository,
        settings: FirmSettingsRepository,
        references: ReferenceCache,
        gate: DependencyGate,
        status: StatusReporter,
        writer: Callable[[QboClient], ExactlyOnceWriter],
    ) -> None:
        self._records = records
        self._settings = settings
        self._references = references
        self._gate = gate
        self._status = status
        self._writer = writer

    def apply(  # noqa: PLR0913
        self,
        job: Job,
        payment: Payment,
        resolved: Resolved,
        ref: QboReference,
        settings: FirmSyncSettings,
        qbo: QboClient,
        memo: Outcome,
    ) -> Outcome:
        """Apply the credit payment's CreditMemo (``memo``, in QBO now) to its invoices, exactly once.

        The zero-total Payment is its own record (``credit_application``, the payment's id and version)
        written by the exactly-once writer. A DataError is reported on the payment in the error center.
        """
        resolved.credit_memo_id = memo.qbo_id
        try:
            payload = mapping.credit_application_payload(payment, resolved, ref, settings)
            result = self._writer(qbo).write(
                job.key.sibling(vocab.CREDIT_APPLICATION),
                job.version,
                "create",
                "Payment",
                payload,
                find_existing("Payment", vocab.CREDIT_APPLICATION, job.platform_id, payload),
            )
        except DataError as err:
            logger.warning("credit application failed", extra=log_context(job, error_code=err.code))
            return self._status.report_failure(job, err)
        logger.info(
            "credit applied to invoices",
            extra=log_context(job, status=result.status, qbo_id=result.record.qbo_id),
        )
        return memo

    def ensure(
        self, job: Job, record: SyncRecord, connection: Connection, qbo: QboClient, done: Outcome
    ) -> Outcome:
        """A redelivered credit payment whose CreditMemo is synced: write the application if it is missing
        (a crash or a retryable error came between the CreditMemo and its application)."""
        payment = job.record
        if not (
            isinstance(payment, Payment)
            and payment.credit_source
            and record.qbo_entity == "CreditMemo"
            and record.qbo_id
        ):
            return done
        applied = self._records.get(job.key.sibling(vocab.CREDIT_APPLICATION))
        if (
            applied is not None
            and applied.status == SYNCED
            and applied.intent is None
            and (applied.platform_version or 0) >= job.version
        ):
            return done
        settings = self._settings.get(job.firm_id, seed=connection.settings)
        if job.force:
            settings, payment = forced(settings, payment)
        waiting, resolved = self._gate.prerequisites(job, payment, qbo)
        if waiting:
            logger.warning(
                "credit application waits: a prerequisite is not in QuickBooks",
                extra=log_context(job, waiting_on=len(waiting)),
            )
            return done
        return self.apply(job, payment, resolved, self._references.get(qbo), settings, qbo, done)

    def remove(self, job: Job, qbo: QboClient) -> None:
        """Before a credit payment's CreditMemo is deleted, delete the Payment that applied it."""
        applied = self._records.get(job.key.sibling(vocab.CREDIT_APPLICATION))
        if applied is None or not applied.qbo_id or applied.applied_op == "delete":
            return
        self._writer(qbo).write(
            job.key.sibling(vocab.CREDIT_APPLICATION),
            max(job.version, applied.platform_version or 0),
            "delete",
            "Payment",
            {},
        )
