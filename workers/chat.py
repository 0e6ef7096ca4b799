"""One inference request of a job, under its lease (docs/architecture.md, "Layout"): cancelling the job or losing
its lease aborts the request on the server by its id, and the worker then stops with Cancelled / LeaseLost."""

import threading

from pipeline.client import Completion
from pipeline.errors import RequestCancelled
from workers.runner import JobContext
from workers.settings import inference_client


def chat(ctx: JobContext, messages: list[dict], *, cancel: threading.Event | None = None, **options) -> Completion:
    """Send `messages` to the end (`options` go to the client's chat) with the tenant's cache salt (tenants share no
    cache). `cancel`, made here and set by the lease when not given, aborts the request; a cancelled request or a
    lease lost meanwhile raises Cancelled / LeaseLost (the client's RequestCancelled only if neither happened)."""
    if cancel is None:
        cancel = threading.Event()
        ctx.lease.on_lost(cancel.set)  # cancel or takeover → abort the inference request by its id
    try:
        completion = inference_client().chat(messages, cancel=cancel,
                                             cache_salt=ctx.settings.cache_salt(ctx.job.tenant_id), **options)
    except RequestCancelled:
        ctx.lease.check()  # raises Cancelled / LeaseLost
        raise
    ctx.lease.check()
    return completion
