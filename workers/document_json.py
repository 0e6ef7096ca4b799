"""The extracted document as a JSON blob: now `pipeline.document_json` (the API's batch dry run reads it too)."""

from pipeline.document_json import FORMAT, dumps, loads

__all__ = ["FORMAT", "dumps", "loads"]
