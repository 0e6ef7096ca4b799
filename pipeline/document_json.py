"""The extracted document as a JSON blob: what ingest stores and summarize, answer and a batch's dry run read."""

import json
from dataclasses import asdict

from pipeline.document import ExtractedDocument, Kind, Section, Skipped

FORMAT = "wholedoc.extracted/1"


def dumps(doc: ExtractedDocument) -> bytes:
    return json.dumps({"format": FORMAT, **asdict(doc)}, ensure_ascii=False).encode()


def loads(data: bytes) -> ExtractedDocument:
    raw = json.loads(data)
    assert raw.get("format") == FORMAT, f"not an extracted-document blob: format {raw.get('format')!r}"
    return ExtractedDocument(
        kind=Kind(raw["kind"]), text=raw["text"], metadata=raw.get("metadata") or {},
        sections=tuple(Section(**s) for s in raw["sections"]),
        skipped=tuple(Skipped(**s) for s in raw.get("skipped") or ()),
    )
