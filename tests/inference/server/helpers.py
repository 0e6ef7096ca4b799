"""Helpers of the server tests (import them; fixtures live in conftest.py)."""


def document_question(doc: str, question: str) -> list[dict]:
    """The pipeline's prompt shape: a system line, the document, then the question (same prefix for every one)."""
    return [{"role": "system", "content": "Answer from the document."},
            {"role": "user", "content": f"<document>\n{doc}</document>\n\nQuestion: {question}"}]
