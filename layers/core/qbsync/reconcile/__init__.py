"""Scheduled reconciliation (PRODUCT.md G): keep every firm's QuickBooks company and the platform in step."""
