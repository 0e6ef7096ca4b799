"""One entry for every input: a PDF, a zip/tar archive or a directory → ExtractedDocument (type sniffed by content)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.document import ExtractedDocument
from pipeline.errors import IngestError, UnsupportedFormat

_HEAD_BYTES = 1024


def ingest_path(
    path: str | os.PathLike,
    *,
    password: str | None = None,
    isolate: bool = True,
    pdf_options=None,
    limits=None,
    line_numbers: bool = False,
) -> ExtractedDocument:
    """Extract a PDF or pack a codebase, in a child process with time and memory limits unless `isolate=False`.

    The type is judged by content, never by the file name: `%PDF-` in the first KB → PDF; a zip or tar
    (optionally gzip/bz2/xz-compressed) archive or a directory → codebase. `pdf_options`: `pipeline.pdf.PdfOptions`;
    `limits`: `pipeline.pdf.IsolationLimits`. Raises an `IngestError` subclass a person can act on.
    """
    src = Path(path)
    if not src.exists():
        raise IngestError(f"{str(src)!r} does not exist")
    if src.is_dir():
        return _pack(src, line_numbers, isolate, limits)
    if not src.is_file():
        raise UnsupportedFormat(f"{str(src)!r} is not a regular file or a directory")
    with open(src, "rb") as f:
        head = f.read(_HEAD_BYTES)
    from pipeline.pdf import DEFAULT_OPTIONS, extract_pdf, extract_pdf_isolated, looks_like_pdf

    if looks_like_pdf(head):
        options = pdf_options or DEFAULT_OPTIONS
        if isolate:
            return extract_pdf_isolated(src, password=password, options=options, limits=_limits(limits))
        return extract_pdf(src, password=password, options=options)
    from pipeline.codebase import is_archive

    if is_archive(str(src)):
        return _pack(src, line_numbers, isolate, limits)
    what = "it is empty" if not head else f"it starts with {head[:16]!r}"
    raise UnsupportedFormat(f"{src.name!r} is neither a PDF nor a zip/tar archive ({what}); "
                            "give a PDF, an archive of a codebase, or a directory")


def _pack(src: Path, line_numbers: bool, isolate: bool, limits) -> ExtractedDocument:
    from pipeline.codebase import pack_codebase

    if not isolate:
        return pack_codebase(src, line_numbers=line_numbers)
    from pipeline.sandbox import run_isolated

    lim = _limits(limits)
    return run_isolated(pack_codebase, str(src), line_numbers=line_numbers, timeout_s=lim.timeout_s,
                        memory_bytes=lim.memory_bytes)


def _limits(limits):
    from pipeline.pdf import DEFAULT_LIMITS

    return limits or DEFAULT_LIMITS
