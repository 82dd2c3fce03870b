"""Scheduled work run by one leader at a time: escalation of unacknowledged urgent
tasks, daily hub digests, and other areas' jobs."""
