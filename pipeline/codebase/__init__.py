"""Codebases into one deterministic text: folders and archives, .gitignore, caps, hostile-archive safety."""

from pipeline.codebase.archive import is_archive, read_archive
from pipeline.codebase.limits import PackLimits
from pipeline.codebase.pack import file_body, file_header, pack_codebase

__all__ = ["PackLimits", "file_body", "file_header", "is_archive", "pack_codebase", "read_archive"]
