"""A job's lease, held by a heartbeat thread that renews it and notices cancellation or takeover."""

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import Cancelled, LeaseLost
from pipeline.records import jobs
from pipeline.records.db import transaction

log = logging.getLogger(__name__)


class Lease:
    """Renews `job_id`'s lease every `every` seconds until closed; `check()` raises once it is lost or cancelled.

    `on_lost` callbacks (e.g. abort the inference request) run on the heartbeat thread when that happens.
    """

    def __init__(self, sessions: sessionmaker[Session], job_id: str, owner: str, lease_seconds: float, every: float):
        self.sessions, self.job_id, self.owner = sessions, job_id, owner
        self.lease_seconds, self.every = lease_seconds, every
        self.lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> "Lease":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(self.every + 5)

    def on_lost(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)
        if self.lost is not None:
            callback()

    def check(self) -> None:
        """Raise Cancelled / LeaseLost if this worker must stop (called between stages and while streaming)."""
        if self.lost is not None:
            raise self.lost

    def mark_lost(self, exc: LeaseLost) -> None:
        if self.lost is not None:
            return
        self.lost = exc
        log.warning("job %s: %s", self.job_id, exc)
        for callback in self._callbacks:
            try:
                callback()
            except Exception:  # an abort that fails must not kill the heartbeat
                log.exception("job %s: on_lost callback failed", self.job_id)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with transaction(self.sessions) as s:
                    jobs.renew_lease(s, self.job_id, self.owner, self.lease_seconds)
            except (Cancelled, LeaseLost) as exc:
                self.mark_lost(exc)
                return
            except Exception:  # a database blip: keep trying until the lease really expires
                log.exception("job %s: lease renewal failed", self.job_id)
