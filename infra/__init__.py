"""Plumbing: configuration, database, Kafka admin and the embedded broker, the CLI."""
