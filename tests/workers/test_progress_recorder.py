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
