"""Counts in messages say "1 document" and "2 documents" (pipeline.words.plural), also in the records' refusals."""

import pytest

from pipeline.records import batches
from pipeline.words import plural


@pytest.mark.parametrize(("n", "want"), [(0, "0 documents"), (1, "1 document"), (2, "2 documents"),
                                         (-1, "-1 documents"), (11, "11 documents")])
def test_singular_for_exactly_one(n, want):
    assert plural(n, "document") == want


def test_irregular_plural_and_number_format():
    assert plural(1, "corpus", "corpora") == "1 corpus" and plural(3, "corpus", "corpora") == "3 corpora"
    assert plural(12_345, "token", spec=",") == "12,345 tokens" and plural(1, "document", spec=">5") == "    1 document"
    assert plural(1, "new document") == "1 new document"


def test_a_batch_over_the_item_limit_counts_one_question_in_the_singular():
    with pytest.raises(batches.BatchTooLarge) as refused:
        batches.check_size(10_001, 1)
    assert str(refused.value).startswith("10,001 documents x 1 question = 10,001 items; ")
    with pytest.raises(batches.BatchTooLarge, match=r"^11 documents x 1,000 questions = 11,000 items; "):
        batches.check_size(11, 1000)
