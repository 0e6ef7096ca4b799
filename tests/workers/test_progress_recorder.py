"""The worker's progress recorder: the bar moves through decoding instead of jumping from 0.8 to 1.0."""

from pipeline.client import Progress
from workers.tasks import llm


class _Recorded:
    """The slice of JobContext the recorder uses: progress(**fields), here kept in a list."""

    def __init__(self):
        self.fields: list[dict] = []

    def progress(self, **fields):
        self.fields.append(fields)


def test_decode_progress_rises_from_the_prefill_share_towards_one(monkeypatch):
    """Regression: progress stayed at 0.795 through decoding and jumped to 1.0 when the result was stored."""
    monkeypatch.setattr(llm, "PROGRESS_EVERY", 0.0)
    ctx = _Recorded()
    rec = llm.ProgressRecorder(ctx, max_tokens=40)
    rec(Progress("prefill", 1, prefill_tokens_done=990, prefill_tokens_total=1000))
    for n in (1, 10, 20, 40, 60):  # a server may stream past the cap's estimate: still below 1.0
        rec(Progress("decode", 1, tokens_generated=n))
    shares = [f["progress"] for f in ctx.fields]
    assert shares[0] < 0.8 <= shares[1]
    assert shares == sorted(shares) and shares[-1] < 1.0 and shares[-2] > 0.95
    assert [f["tokens_generated"] for f in ctx.fields[1:]] == [1, 10, 20, 40, 60]


def test_a_progress_write_never_fails_the_request(monkeypatch, caplog):
    """A lost lease or cancel while recording progress is ignored (the cancel event is already set); any other
    error is logged as a warning; neither reaches the streaming request."""
    import logging

    from pipeline.errors import Cancelled, LeaseLost

    class _Failing:
        def __init__(self, exc):
            self.exc = exc

        def progress(self, **fields):
            raise self.exc

    monkeypatch.setattr(llm, "PROGRESS_EVERY", 0.0)
    with caplog.at_level(logging.WARNING, logger="workers"):
        llm.ProgressRecorder(_Failing(LeaseLost("taken over")), 8)(Progress("decode", 1, tokens_generated=1))
        llm.ProgressRecorder(_Failing(Cancelled("cancelled")), 8)(Progress("decode", 1, tokens_generated=1))
        assert not [r for r in caplog.records if "progress" in r.getMessage()]
        llm.ProgressRecorder(_Failing(OSError("database gone")), 8)(Progress("decode", 1, tokens_generated=1))
    warned = [r for r in caplog.records if r.getMessage() == "could not record the job's progress"]
    assert len(warned) == 1 and warned[0].exc_info[0] is OSError
