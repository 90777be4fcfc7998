"""qbsync: the shared core of every qbsync Lambda handler (domain logic and adapters)."""
