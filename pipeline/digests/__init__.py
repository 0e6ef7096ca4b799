"""Scheduled corpus digests (docs/digests-and-webhooks.md): cron schedules in an IANA time zone, and the choice of
what one digest prompt holds (the documents whole, or their summaries) with its citations mapped to documents."""
