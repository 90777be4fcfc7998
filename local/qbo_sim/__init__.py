"""Local QuickBooks Online simulator (see docs/qbo-simulator.md).

``python -m local.qbo_sim --port 8910`` runs it; ``SimulatorServer`` runs it in-process for tests;
``SimControl`` drives its control API.
"""
