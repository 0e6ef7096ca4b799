"""`-` as a file argument: standard input spooled to a temporary file, named by what its first bytes say it is
(the upload and extraction code paths then see an ordinary file)."""

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# first bytes -> the suffix extraction and packing recognise
_SUFFIXES = ((b"%PDF-", ".pdf"), (b"PK\x03\x04", ".zip"), (b"PK\x05\x06", ".zip"), (b"\x1f\x8b", ".tar.gz"),
             (b"BZh", ".tar.bz2"), (b"\xfd7zXZ\x00", ".tar.xz"))


def _suffix(head: bytes) -> str:
    for magic, suffix in _SUFFIXES:
        if head.startswith(magic):
            return suffix
    return ".tar" if head[257:262] == b"ustar" else ""


@contextmanager
def path_or_stdin(target: str) -> Iterator[str]:
    """`target` itself, or for "-" the path of a temporary copy of standard input (removed afterwards)."""
    if target != "-":
        yield target
        return
    with tempfile.TemporaryDirectory(prefix="wholedoc-stdin-") as tmp:
        raw = tmp + "/stdin"
        with open(raw, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        with open(raw, "rb") as f:
            head = f.read(512)
        path = Path(raw).rename(Path(tmp) / f"stdin{_suffix(head)}")
        yield str(path)
