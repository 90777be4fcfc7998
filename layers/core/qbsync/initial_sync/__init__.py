"""The initial sync of a firm's history (PRODUCT.md F): plan, approve, then bulk-sync on Step Functions."""
