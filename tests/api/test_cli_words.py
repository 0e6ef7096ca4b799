"""What the command line prints counts "1 document" and "2 documents" (pipeline.words.plural): the corpus question's
plan, a batch's estimate, the answers' failure line and the documents list, through the functions that print them."""

import io
import sys

from api.cli.commands.batch import _print_estimate
from api.cli.commands.documents import _row
from api.cli.corpus_ask import _plan_text
from api.cli.output import print_answers


class _Terminal(io.StringIO):
    def isatty(self) -> bool:  # the estimate prints its sentence, not JSON, on a terminal
        return True


def _doc(n: int) -> dict:
    return {"doc": n, "document_id": f"d{n}", "tokens": 1200, "score": 1.5, "matched_terms": ["budget"]}


def _plan(documents: int) -> dict:
    return {"packing": "selected", "documents": [_doc(i + 1) for i in range(documents)], "skipped": [],
            "prompt_tokens": 2400, "cached_tokens": 0, "cache_source": "cold", "window_tokens": 4096}


def test_corpus_question_plan():
    assert "selected: 1 document, 2,400 prompt tokens" in _plan_text("Why?", _plan(1))
    assert "selected: 2 documents, 2,400 prompt tokens" in _plan_text("Why?", _plan(2))


def _estimate(items: int, documents: int, per_question_docs: list[int]) -> dict:
    return {"mode": "corpus", "items": items, "documents": documents, "prompt_tokens": 100, "cached_tokens": 0,
            "cache_source": "cold", "tokens_to_prefill": 100, "max_output_tokens": 10,
            "per_question": [{"question_index": i, "document_ids": [f"d{j}" for j in range(n)], "prompt_tokens": 100,
                              "cached_tokens": 0, "error": None} for i, n in enumerate(per_question_docs)]}


def _printed_estimate(monkeypatch, est: dict) -> str:
    out = _Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    _print_estimate(est)
    return out.getvalue()


def test_batch_estimate(monkeypatch):
    one = _printed_estimate(monkeypatch, _estimate(1, 1, [1]))
    assert "question 1: 1 document, 100 prompt tokens" in one and "1 item over 1 document: 100 prompt tokens" in one
    two = _printed_estimate(monkeypatch, _estimate(2, 3, [2, 3]))
    assert "question 1: 2 documents," in two and "2 items over 3 documents:" in two


def test_failed_answers_line(capsys):
    failed = ("Why?", {"state": "failed", "error": "boom"}, None)
    assert print_answers([failed], as_json=False) == 1
    assert "error: 1 of 1 question failed" in capsys.readouterr().err
    print_answers([failed, failed], as_json=False)
    assert "error: 2 of 2 questions failed" in capsys.readouterr().err


def test_documents_list_row():
    pdf = {"id": "d1", "status": "ready", "kind": "pdf", "num_pages": 1, "num_tokens": 900, "filename": "a.pdf"}
    assert " 1 page, 900 tokens " in _row("documents", pdf)
    code = {"id": "d2", "status": "ready", "kind": "codebase", "num_files": 7, "num_tokens": 9000, "filename": "x"}
    assert " 7 files, 9,000 tokens " in _row("documents", code)
