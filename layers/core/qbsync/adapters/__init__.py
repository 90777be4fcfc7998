"""One adapter per AWS resource. Each takes an optional boto3 client (tests pass one pointed at moto
or wrapped in botocore's Stubber); without one it uses a lazily created client shared by the container.
Infrastructure errors are translated once, here, into :mod:`qbsync.errors`."""

from qbsync.adapters._aws import clear_default_clients, default_client

__all__ = ["clear_default_clients", "default_client"]
