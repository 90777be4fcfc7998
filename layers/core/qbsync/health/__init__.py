"""Per-firm health (PRODUCT.md J.6, issue 15 item 3): the figures of ``GET /health`` and their level."""
