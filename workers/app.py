"""The Celery app: broker, explicit queues, task names, and the reconciler's beat schedule.

The API imports only this module (never task code) and enqueues by task name with `send_job`; the command line
reads the workers' settings class through it (`WorkerSettings`). Tasks carry ids only; the job row in the database
is the truth.
"""

from celery import Celery
from celery.signals import setup_logging
from kombu import Queue

from pipeline import logs
from workers.settings import WorkerSettings

INGEST = "workers.ingest"
SUMMARIZE = "workers.summarize"
ANSWER = "workers.answer"
RECONCILE = "workers.reconcile"
BATCH_ADVANCE = "workers.batches.advance"  # one dispatch step of a batch (workers.tasks.batches)
BATCH_SWEEP = "workers.batches.sweep"  # stalled or resumable batches get a step (beat)
DIGEST = "workers.digest"  # a digest job (workers.tasks.digests)
DIGEST_TICK = "workers.digests.tick"  # due schedules become runs, runs advance (beat)
WEBHOOK_DELIVER = "workers.webhooks.deliver"  # due webhook deliveries are sent (beat)
CORPUS_ANSWER = "workers.corpus_answer"  # a question over a corpus (workers.tasks.corpus)

QUEUES = ("ingest", "llm", "maintenance")
TASK_FOR_KIND = {"ingest": INGEST, "summarize": SUMMARIZE, "answer": ANSWER, "digest": DIGEST,
                 "corpus_answer": CORPUS_ANSWER}
QUEUE_FOR_TASK = {INGEST: "ingest", SUMMARIZE: "llm", ANSWER: "llm", RECONCILE: "maintenance", DIGEST: "llm",
                  DIGEST_TICK: "maintenance", WEBHOOK_DELIVER: "maintenance", BATCH_ADVANCE: "maintenance",
                  BATCH_SWEEP: "maintenance", CORPUS_ANSWER: "llm"}


def broker_supports_broadcast(url: str) -> bool:
    """kombu's SQLAlchemy transport has no fanout, so remote control (revoke) is unavailable on it."""
    return not url.startswith("sqla+")


def transport_options(url: str, visibility_timeout: float) -> dict:
    """Redis: the visibility timeout. kombu's SQLAlchemy transport hands its options to create_engine: none."""
    if url.startswith("sqla+"):
        return {}
    return {"visibility_timeout": int(visibility_timeout)}


def make_app(settings: WorkerSettings | None = None) -> Celery:
    """The Celery app on the settings' broker (default: the environment's; a bad variable is a SettingsError)."""
    cfg = settings or WorkerSettings.load()
    app = Celery("wholedoc", include=["workers.tasks.ingest", "workers.tasks.llm", "workers.tasks.reconcile",
                                         "workers.tasks.digests", "workers.tasks.webhooks",
                                         "workers.tasks.batches",  # bulk Q&A batches (docs/batches.md)
                                         "workers.tasks.corpus"])  # questions over a corpus
    url = cfg.broker_url
    reconcile_every = cfg.reconcile_seconds
    app.conf.update(
        broker_url=url,
        broker_connection_retry_on_startup=True,
        # NOTE: Redis redelivers an unacked message only after this; our DB lease + reconciler recover much sooner.
        broker_transport_options=transport_options(url, cfg.visibility_timeout),
        task_ignore_result=True,  # results live in the database
        task_acks_late=True,  # tasks are idempotent: a lost worker's message is redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_create_missing_queues=False,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="llm",
        task_routes={name: {"queue": queue} for name, queue in QUEUE_FOR_TASK.items()},
        task_serializer="json",
        accept_content=["json"],
        beat_schedule={"reconcile": {"task": RECONCILE, "schedule": reconcile_every,
                                     "options": {"queue": "maintenance", "expires": reconcile_every}},
                       "digests": {"task": DIGEST_TICK, "schedule": cfg.digest_tick_seconds,
                                   "options": {"queue": "maintenance", "expires": cfg.digest_tick_seconds}},
                       "webhooks": {"task": WEBHOOK_DELIVER, "schedule": cfg.webhook_poll_seconds,
                                    "options": {"queue": "maintenance", "expires": cfg.webhook_poll_seconds}},
                       # stalled or resumable batches get a step (docs/batches.md)
                       "batches": {"task": BATCH_SWEEP, "schedule": reconcile_every,
                                   "options": {"queue": "maintenance", "expires": reconcile_every}}},
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()


@setup_logging.connect
def _logs(**_) -> None:
    """Worker and beat log through pipeline.logs (JSON lines unless on a terminal) at WHOLEDOC_LOG_LEVEL; Celery's
    own --loglevel is not used."""
    cfg = WorkerSettings.load()
    logs.configure(cfg.log_level, cfg.log_format)


def send_tick(name: str) -> None:
    """Send a beat task now (DIGEST_TICK, WEBHOOK_DELIVER), so new work starts before the next beat; safe to repeat."""
    app.send_task(name, queue=QUEUE_FOR_TASK[name])


def send_job(kind: str, job_id: str, tenant_id: str, *, countdown: float | None = None) -> None:
    """Enqueue the task for a job (by name, on its queue). Safe to repeat: the task claims the job atomically."""
    name = TASK_FOR_KIND[kind]
    # NOTE: the task id is the job id, so cancel can revoke a message still waiting in the queue.
    app.send_task(name, args=[job_id, tenant_id], queue=QUEUE_FOR_TASK[name], countdown=countdown, task_id=job_id)


def send_batch(batch_id: str, *, countdown: float | None = None) -> None:
    """Enqueue one dispatch step of a batch. Safe to repeat: steps hold the batch's row lock, and one with nothing to
    do changes nothing."""
    app.send_task(BATCH_ADVANCE, args=[batch_id], queue=QUEUE_FOR_TASK[BATCH_ADVANCE], countdown=countdown)
