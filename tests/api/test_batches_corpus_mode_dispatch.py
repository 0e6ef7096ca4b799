"""Corpus-mode dispatch steps (pipeline.records.batches._advance_corpus, docs/batches.md#corpus-mode) on PostgreSQL:
each item is selected once and dispatched in set order, at most `docs_in_flight` sets at once; an item that selects
nothing fails with the reason; a deleted corpus fails what is left. The selector stands in for the search (the
end-to-end tests in test_batches_corpus_mode.py run the worker's own)."""

import pytest

from pipeline.records import batches, jobs
from pipeline.records.batches import DispatchLimits, NothingSelected
from pipeline.records.corpora import create_corpus, delete_corpus
from pipeline.records.db import transaction
from pipeline.records.models import BatchItem, Job, new_id
from pipeline.records.tenants import create_tenant

pytestmark = pytest.mark.services
SETS = {"a1?": ["d1", "d2"], "b1?": ["d3"], "a2?": ["d1", "d2"], "c1?": ["d1"], "b2?": ["d3"], "a3?": ["d1", "d2"]}


class Selector:
    def __init__(self):
        self.calls = []

    def __call__(self, session, batch, question):
        self.calls.append(question)
        if question not in SETS:
            raise NothingSelected(f"nothing matches {question!r}")
        return SETS[question]


def _corpus_batch(records, questions) -> tuple[str, str, str]:
    with transaction(records) as s:
        tenant = create_tenant(s, f"cm-{new_id()}")
        corpus = create_corpus(s, tenant.id, "reports")
        batch = batches.create_batch(s, tenant.id, [], questions, thinking=False, max_tokens=8, corpus_id=corpus.id,
                                     mode="corpus")
        return tenant.id, corpus.id, batch.id


def _step(records, batch_id, selector, in_flight=1):
    with transaction(records) as s:
        return batches.advance(s, batch_id, DispatchLimits(docs_in_flight=in_flight, max_active_jobs=0),
                               selector=selector)


def _questions(records, step) -> list[str]:
    with records() as s:
        return [s.get(Job, j).params["question"] for j, _ in step.send]


def _finish(records, step) -> None:
    with transaction(records) as s:
        for job_id, _ in step.send:
            jobs.claim_job(s, job_id, "w", 60)
            result = jobs.finish_job(s, job_id, "w", text="ok", citations=[],
                                     usage={"prompt_tokens": 300, "cached_tokens": 256, "completion_tokens": 2})
            result.coverage = {"mode": "corpus", "documents": []}  # as the corpus task stores it


def test_sets_run_back_to_back_each_item_selected_once(records):
    _, _, batch_id = _corpus_batch(records, list(SETS) + ["zz?"])
    selector = Selector()
    with records() as s:
        assert s.query(BatchItem).filter_by(batch_id=batch_id).count() == 7  # one item per question
    seen, finished = [], False
    for _ in range(6):
        step = _step(records, batch_id, selector)
        if step.finished:
            finished = True
            break
        assert step.kind == "corpus_answer"
        seen.append(_questions(records, step))
        assert _step(records, batch_id, selector).send == []  # one set in flight: nothing more until it ends
        _finish(records, step)
    # set keys in order: "d1" < "d1,d2" < "d3"; within a set, question order
    assert seen == [["c1?"], ["a1?", "a2?", "a3?"], ["b1?", "b2?"]]
    assert sorted(selector.calls) == sorted(list(SETS) + ["zz?"])  # selected once each, at the first step
    assert finished and _step(records, batch_id, selector).state == "done"
    with records() as s:
        items = {i.question_index: i for i in s.query(BatchItem).filter_by(batch_id=batch_id)}
    assert items[6].state == "failed" and items[6].error == "nothing matches 'zz?'" and items[6].job_id is None
    assert items[0].set_key == "d1,d2" and items[0].state == "done" and items[0].coverage["mode"] == "corpus"


def test_two_sets_in_flight(records):
    _, _, batch_id = _corpus_batch(records, list(SETS))
    step = _step(records, batch_id, Selector(), in_flight=2)
    assert _questions(records, step) == ["c1?", "a1?", "a2?", "a3?"]


def test_a_deleted_corpus_fails_what_is_left(records):
    tenant_id, corpus_id, batch_id = _corpus_batch(records, ["a1?", "b1?"])
    first = _step(records, batch_id, Selector())
    with transaction(records) as s:
        delete_corpus(s, tenant_id, corpus_id)
    _finish(records, first)
    _step(records, batch_id, Selector())
    assert _step(records, batch_id, Selector()).finished
    with records() as s:
        states = {i.question_index: (i.state, i.error) for i in s.query(BatchItem).filter_by(batch_id=batch_id)}
    assert states == {0: ("done", None), 1: ("failed", "the batch's corpus was deleted")}


def test_a_corpus_batch_needs_a_selector(records):
    _, _, batch_id = _corpus_batch(records, ["a1?"])
    with pytest.raises(ValueError, match="selector"), transaction(records) as s:
        batches.advance(s, batch_id, DispatchLimits(max_active_jobs=0))
