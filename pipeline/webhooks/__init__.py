"""Webhooks (docs/digests-and-webhooks.md): the events, Standard Webhooks signing, the address check that keeps
deliveries off loopback, private and link-local networks, and the HTTP send itself."""

EVENTS = ("job.done", "job.failed", "batch.completed", "digest.completed")
