"""Read a zip or tar(.gz/.bz2/.xz) archive into memory, safely: nothing is ever written to disk.

Only regular files are read. Absolute paths, `..`, symlinks, hardlinks and devices become skipped entries
with a reason; entry count, decompressed bytes and compression ratio are capped (bomb → `UnsafeArchive`).
"""

import os
import stat
import tarfile
import zipfile
from pathlib import PurePosixPath

from pipeline.codebase.limits import PackLimits
from pipeline.codebase.walk import TOO_BIG, TOO_DEEP
from pipeline.document import Skipped
from pipeline.errors import IngestError, UnsafeArchive

UNSAFE_PATH = "unsafe path"
LINK = "link in archive"
SPECIAL = "special file"
DUPLICATE = "duplicate entry"
ENCRYPTED = "encrypted entry"
READ = 1 << 16


def is_archive(path: str) -> bool:
    """True for a zip or tar file (judged by content, not by name)."""
    if not os.path.isfile(path):
        return False
    return zipfile.is_zipfile(path) or _is_tar(path)


def _is_tar(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, tarfile.TarError, ValueError):
        return False


def safe_name(name: str, max_depth: int = PackLimits.max_depth) -> tuple[str | None, str]:
    """(normalized relative path, '') or (None, reason) for an entry name that could escape the extraction area."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or "\x00" in raw:
        return None, f"{UNSAFE_PATH}: absolute path {name!r}"
    if raw.count("/") > 4 * max_depth + 8:  # cheap guard before splitting a 64 KiB name of slashes
        return None, f"{TOO_DEEP}: more than {max_depth} folder levels"
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None, f"{UNSAFE_PATH}: '..' in {name!r} would escape the archive"
    if len(parts) > max_depth + 1:
        return None, f"{TOO_DEEP}: more than {max_depth} folder levels"
    return "/".join(parts) or None, ""


def read_archive(path: str, limits: PackLimits = PackLimits()) -> tuple[dict[str, bytes], list[Skipped]]:  # noqa: B008
    """The archive's regular files as {relative path: bytes} and the entries left out, with reasons."""
    if zipfile.is_zipfile(path):
        return _read_zip(path, limits)
    if _is_tar(path):
        return _read_tar(path, limits)
    raise IngestError(f"{os.path.basename(path)} is neither a zip nor a tar archive")


class _Budget:
    """Counts decompressed bytes across the whole archive."""

    def __init__(self, limits: PackLimits):
        self.limits, self.used = limits, 0

    def take(self, n: int, name: str) -> None:
        self.used += n
        if self.used > self.limits.max_archive_bytes:
            raise UnsafeArchive(f"archive decompresses to more than {self.limits.max_archive_bytes} bytes "
                                f"(max_archive_bytes), reached at {name!r}: refusing a possible zip bomb")


def _read_member(f, name: str, limits: PackLimits, budget: _Budget | None, compressed: int | None) -> bytes | None:
    """Up to max_file_bytes + 1 bytes, counting every byte read against the budget and the ratio cap."""
    chunks, n = [], 0
    while n <= limits.max_file_bytes:
        chunk = f.read(min(READ, limits.max_file_bytes + 1 - n))
        if not chunk:
            break
        n += len(chunk)
        if budget:
            budget.take(len(chunk), name)
        if compressed is not None and n > 1 << 20 and n > limits.max_ratio * max(compressed, 1):
            raise UnsafeArchive(f"entry {name!r} expands more than {limits.max_ratio:g}x "
                                f"({compressed} compressed bytes): refusing a zip bomb")
        chunks.append(chunk)
    data = b"".join(chunks)
    return None if len(data) > limits.max_file_bytes else data


class _Files:
    """The accepted files, refusing duplicates and file/folder clashes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()
        self.skipped: list[Skipped] = []

    def add(self, rel: str, data: bytes) -> None:
        parents = {"/".join(rel.split("/")[:i]) for i in range(1, rel.count("/") + 1)}
        if rel in self.files or rel in self.dirs or parents & self.files.keys():
            self.skipped.append(Skipped(rel, f"{DUPLICATE}: the path is already taken by another entry"))
            return
        self.files[rel] = data
        self.dirs |= parents


def _check_count(n: int, limits: PackLimits) -> None:
    if n > limits.max_entries:
        raise UnsafeArchive(f"archive has more than {limits.max_entries} entries (max_entries)")


def _read_zip(path: str, limits: PackLimits) -> tuple[dict[str, bytes], list[Skipped]]:
    out, budget = _Files(), _Budget(limits)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_count(len(infos), limits)
            for info in infos:
                rel, why = safe_name(info.filename, limits.max_depth)
                mode = info.external_attr >> 16
                if rel is None:
                    if why:
                        out.skipped.append(Skipped(info.filename, why))
                    continue
                if info.is_dir():
                    continue
                if stat.S_ISLNK(mode):
                    out.skipped.append(Skipped(rel, f"{LINK}: symlink, not followed"))
                    continue
                if mode and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                    out.skipped.append(Skipped(rel, f"{SPECIAL}: not a regular file"))
                    continue
                if info.flag_bits & 0x1:
                    out.skipped.append(Skipped(rel, f"{ENCRYPTED}: password-protected"))
                    continue
                if info.file_size > limits.max_file_bytes:  # declared size; the read below checks the real one
                    out.skipped.append(Skipped(rel, f"{TOO_BIG}: larger than {limits.max_file_bytes} bytes"))
                    continue
                with zf.open(info) as f:
                    data = _read_member(f, rel, limits, budget, info.compress_size)
                if data is None:
                    out.skipped.append(Skipped(rel, f"{TOO_BIG}: larger than {limits.max_file_bytes} bytes"))
                else:
                    out.add(rel, data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as e:
        raise UnsafeArchive(f"corrupt or unsupported zip archive: {e}") from e
    return out.files, out.skipped


def _read_tar(path: str, limits: PackLimits) -> tuple[dict[str, bytes], list[Skipped]]:
    out, budget = _Files(), _Budget(limits)
    compressed = os.path.getsize(path)
    count = 0
    try:
        with tarfile.open(path, "r:*") as tf:
            while (m := tf.next()) is not None:
                count += 1
                _check_count(count, limits)
                tf.members = []  # keep memory flat on huge archives
                rel, why = safe_name(m.name, limits.max_depth)
                if rel is None:
                    if why:
                        out.skipped.append(Skipped(m.name, why))
                    continue
                if m.isdir():
                    continue
                if m.issym() or m.islnk():
                    kind = "symlink" if m.issym() else "hardlink"
                    out.skipped.append(Skipped(rel, f"{LINK}: {kind} -> {m.linkname}, not followed"))
                    continue
                if not m.isreg():
                    out.skipped.append(Skipped(rel, f"{SPECIAL}: not a regular file (device, fifo)"))
                    continue
                budget.take(m.size, rel)  # counted even when skipped: reading past it decompresses it too
                if m.size > limits.max_file_bytes:
                    out.skipped.append(Skipped(rel, f"{TOO_BIG}: larger than {limits.max_file_bytes} bytes"))
                    continue
                f = tf.extractfile(m)
                data = _read_member(f, rel, limits, None, None) if f else None
                if budget.used > 1 << 20 and budget.used > limits.max_ratio * compressed:
                    raise UnsafeArchive(f"archive expands more than {limits.max_ratio:g}x its {compressed} bytes: "
                                        f"refusing a compression bomb")
                if data is None:
                    out.skipped.append(Skipped(rel, f"{TOO_BIG}: larger than {limits.max_file_bytes} bytes"))
                else:
                    out.add(rel, data)
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise UnsafeArchive(f"corrupt or unsupported tar archive: {e}") from e
    return out.files, out.skipped
