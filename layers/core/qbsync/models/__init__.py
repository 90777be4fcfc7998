"""Event models: what the platform sends (:mod:`.platform_events`) and what qbsync emits
(:mod:`.qbsync_events`)."""
