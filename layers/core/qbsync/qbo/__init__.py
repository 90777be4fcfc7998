"""QuickBooks Online client core: OAuth (``oauth``), Fault mapping (``faults``), HTTP plumbing (``http``),
the Accounting API client (``client``) and the token provider (``tokens``)."""
