"""The event bus: how committed execution events reach subscribers (in memory or PostgreSQL)."""
