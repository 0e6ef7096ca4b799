"""Celery tasks: thin wrappers that take ids, re-read rows and run under a lease (workers.runner)."""
