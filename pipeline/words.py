"""Counts in messages to people: "1 document", "2 documents". Every message that prints a count before a noun (the
command line's and the API's) goes through `plural`, so none says "1 documents"."""


def plural(n: int, noun: str, nouns: str | None = None, *, spec: str = "") -> str:
    """`n` and the noun, singular for exactly one: plural(1, "document") → "1 document", plural(0, "item") →
    "0 items". `nouns`: an irregular plural (plural(2, "corpus", "corpora")); `spec`: the format of `n` ("," or
    ">5")."""
    return f"{n:{spec}} {noun if n == 1 else nouns or noun + 's'}"
