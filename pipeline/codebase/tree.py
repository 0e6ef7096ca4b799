"""What the walker reads from: a folder on disk, or an archive already read into memory."""

import os
import stat
from abc import ABC, abstractmethod
from enum import StrEnum


class Entry(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    OTHER = "other"  # device, fifo, socket


class Tree(ABC):
    """A read-only tree of files addressed by relative POSIX paths ('' is the root)."""

    @abstractmethod
    def list(self, rel: str) -> list[tuple[str, Entry]]:
        """(name, kind) of the folder's children, in any order."""

    @abstractmethod
    def read(self, rel: str, limit: int) -> bytes:
        """The file's bytes, at most `limit` + 1 of them (so the caller can see it is over `limit`)."""

    def link_target(self, rel: str) -> tuple[str, bool]:
        """(target text, whether it resolves inside the tree) of a symlink."""
        return "", False


class DirTree(Tree):
    """A folder on disk. Symlinks are reported, never followed."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def list(self, rel: str) -> list[tuple[str, Entry]]:
        out = []
        with os.scandir(self._abs(rel)) as it:
            for e in it:
                if e.is_symlink():
                    kind = Entry.SYMLINK
                elif e.is_dir(follow_symlinks=False):
                    kind = Entry.DIR
                elif e.is_file(follow_symlinks=False):
                    kind = Entry.FILE
                else:
                    kind = Entry.OTHER
                out.append((e.name, kind))
        return out

    def read(self, rel: str, limit: int) -> bytes:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(self._abs(rel), flags)  # O_NOFOLLOW: a file swapped for a link meanwhile is refused
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{rel} is not a regular file")
            return f.read(limit + 1)

    def link_target(self, rel: str) -> tuple[str, bool]:
        path = self._abs(rel)
        target = os.readlink(path)
        real = os.path.realpath(path)
        return target, real == self.root or real.startswith(self.root + os.sep)


class MemoryTree(Tree):
    """Files held in memory (an archive's members after the safety checks), keyed by relative path."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.dirs: dict[str, dict[str, Entry]] = {"": {}}
        for path in files:
            parts = path.split("/")
            for i in range(len(parts)):
                parent = "/".join(parts[:i])
                kind = Entry.FILE if i == len(parts) - 1 else Entry.DIR
                self.dirs.setdefault(parent, {})[parts[i]] = kind

    def list(self, rel: str) -> list[tuple[str, Entry]]:
        return list(self.dirs.get(rel, {}).items())

    def read(self, rel: str, limit: int) -> bytes:
        return self.files[rel][: limit + 1]
