"""DynamoDB repositories over the single-table design of docs/contracts.md ("DynamoDB key design")."""
