"""A generated PDF of many text-heavy pages (about 220 tokens each) for the over-window tests: each page's topic
cycles through TOPICS, so a question about one topic has pages that match it (docs/over-window.md)."""

import pymupdf

TOPICS = ("harbor", "orchard", "glacier", "foundry", "library", "vineyard", "observatory", "railway")


def topic_pages(topic: str, pages: int) -> list[int]:
    """The pages of a `long_pdf(pages)` whose topic is `topic`."""
    return [i for i in range(1, pages + 1) if TOPICS[i % len(TOPICS)] == topic]


def long_pdf(pages: int = 40, edition: int = 1) -> bytes:
    """`pages` pages; another `edition` changes every page's first words (no prefix shared with the first)."""
    doc = pymupdf.open()
    for i in range(1, pages + 1):
        topic = TOPICS[i % len(TOPICS)]
        body = f"Chapter {i} (edition {edition}): the {topic} report. " + " ".join(
            f"In year {2000 + j} the {topic} team measured {i * 37 + j} units and filed note {i}-{j}."
            for j in range(10))
        doc.new_page().insert_textbox(pymupdf.Rect(50, 50, 550, 800), body, fontsize=10)
    return doc.tobytes()
