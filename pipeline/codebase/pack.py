"""Pack a codebase (folder or archive) into one deterministic text: a tree header, then every file under its path."""

import os
import re
from collections import Counter

from pipeline.codebase.archive import is_archive, read_archive
from pipeline.codebase.limits import PackLimits
from pipeline.codebase.tree import DirTree, MemoryTree
from pipeline.codebase.walk import TextFile, category, walk
from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.errors import EmptyCodebase, IngestError

FORMAT_VERSION = 1  # bump when the packed text changes, so cached extractions are redone


def file_header(path: str) -> str:
    """The line that opens a file's section; citations name the same path: [path/to/file.py:120: "quote"]."""
    return f"===== {path} ====="


def number_lines(text: str) -> str:
    """`  12 | code` on every line, width fixed per file, so a citation's line number can be read off the text."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    w = len(str(len(lines)))
    return "".join(f"{i:>{w}} | {line}\n" for i, line in enumerate(lines, 1))


_NUMBER = re.compile(r"^ *\d+ \| ", re.M)


def file_body(section: Section, line_numbers: bool) -> str:
    """A file section's content as in the file (header and any line-number prefixes removed), for quote checks."""
    body = section.text.split("\n", 1)[1] if "\n" in section.text else ""
    body = body[:-1] if body.endswith("\n") else body  # the blank line between sections
    return _NUMBER.sub("", body) if line_numbers else body


def render_tree(name: str, paths: list[str]) -> str:
    """A `tree`-style listing of `paths` (already in walk order) under `name/`."""
    root: dict = {}
    for p in paths:
        node = root
        for part in p.split("/"):
            node = node.setdefault(part, {})
    out = [f"{name}/"]

    def emit(node: dict, prefix: str) -> None:
        items = list(node.items())
        for i, (part, child) in enumerate(items):
            last = i == len(items) - 1
            out.append(f"{prefix}{'└── ' if last else '├── '}{part}{'/' if child else ''}")
            if child:
                emit(child, prefix + ("    " if last else "│   "))

    emit(root, "")
    return "\n".join(out) + "\n"


def section_text(f: TextFile, line_numbers: bool) -> str:
    body = number_lines(f.text) if line_numbers else f.text
    if body and not body.endswith("\n"):
        body += "\n"
    return f"{file_header(f.path)}\n{body}\n"


def pack_codebase(path_or_archive: str | os.PathLike, *, line_numbers: bool = False,
                  limits: PackLimits = PackLimits(), name: str | None = None) -> ExtractedDocument:  # noqa: B008
    """Pack a folder or a zip/tar(.gz) archive. Same input and options → byte-identical text.

    Raises `IngestError` (missing input), `UnsafeArchive`, `CodebaseTooLarge` or `EmptyCodebase`.
    """
    src = os.fspath(path_or_archive)
    base = os.path.basename(os.path.normpath(src)) or "codebase"
    pre_skipped = []
    if os.path.isdir(src):
        tree, source = DirTree(src), "directory"
    elif is_archive(src):
        files, pre_skipped = read_archive(src, limits)
        tree, source = MemoryTree(files), "archive"
        for ext in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip"):
            if base.lower().endswith(ext):
                base = base[: -len(ext)]
                break
    elif os.path.exists(src):
        raise IngestError(f"{src} is neither a folder nor a zip/tar archive")
    else:
        raise IngestError(f"{src} does not exist")
    name = name or base
    res = walk(tree, limits)
    skipped = tuple(pre_skipped) + tuple(res.skipped)
    by_reason = dict(sorted(Counter(category(s.reason) for s in skipped).items()))
    if not res.files:
        detail = ", ".join(f"{k}: {v}" for k, v in by_reason.items()) or "the input is empty"
        raise EmptyCodebase(f"no text file to pack in {name} (skipped — {detail})")

    paths = [f.path for f in res.files]
    head = f"Codebase: {name}\nFiles: {len(paths)}\n\nDirectory structure:\n{render_tree(name, paths)}\n"
    sections = tuple(Section(index=i, anchor=f.path, status="text", text=section_text(f, line_numbers), title=f.path)
                     for i, f in enumerate(res.files))
    text = head + "".join(s.text for s in sections)
    metadata = {
        "title": name,
        "source": source,
        "file_count": len(paths),
        "total_bytes": res.total_bytes,
        "skipped_count": len(skipped),
        "skipped_by_reason": by_reason,
        "line_numbers": line_numbers,
        "format_version": FORMAT_VERSION,
    }
    return ExtractedDocument(kind=Kind.CODEBASE, text=text, sections=sections, metadata=metadata, skipped=skipped)
