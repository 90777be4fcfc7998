"""QBO entities: seed data and the engine that applies QBO's rules."""
