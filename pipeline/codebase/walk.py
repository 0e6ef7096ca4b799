"""Walk a tree in a fixed order, applying .gitignore (nested), default ignores, binary sniffing and caps."""

import codecs
from dataclasses import dataclass

from pipeline.codebase.gitignore import IgnoreFile
from pipeline.codebase.limits import DEFAULT_IGNORES, PackLimits
from pipeline.codebase.tree import Entry, Tree
from pipeline.document import Skipped
from pipeline.errors import CodebaseTooLarge

SNIFF = 8192
_DEFAULTS = IgnoreFile(DEFAULT_IGNORES, "", "default ignores")

# Skip reasons: the text before ':' is the category counted in the metadata.
GITIGNORED = "ignored by .gitignore"
DEFAULT = "ignored by default"
BINARY = "binary"
NOT_UTF8 = "not UTF-8 text"
TOO_BIG = "over the per-file cap"
SYMLINK = "symlink"
SPECIAL = "special file"
TOO_DEEP = "too deep"
UNREADABLE = "unreadable"
BAD_NAME = "unusable name"


@dataclass(frozen=True)
class TextFile:
    path: str  # relative POSIX path
    text: str  # newlines normalized to \n
    size: int  # bytes on disk


@dataclass
class WalkResult:
    files: list[TextFile]
    skipped: list[Skipped]
    total_bytes: int = 0


def decode(data: bytes) -> tuple[str | None, str]:
    """(text, '') for UTF-8 (BOM stripped) or BOM-marked UTF-16; (None, reason) for anything else."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return None, f"{NOT_UTF8}: invalid UTF-16"
        if "\x00" in text:
            return None, f"{BINARY}: NUL characters after a UTF-16 byte-order mark"
        return text.replace("\r\n", "\n").replace("\r", "\n"), ""
    if b"\x00" in data[:SNIFF]:
        return None, f"{BINARY}: NUL bytes in the first {SNIFF} bytes"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"{NOT_UTF8}: invalid byte at offset {e.start}"
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, ""


def walk(tree: Tree, limits: PackLimits = PackLimits()) -> WalkResult:  # noqa: B008 (frozen)
    """Every text file of `tree` that no rule ignores, depth first, names in code-point order."""
    res = WalkResult([], [])
    stack: list[IgnoreFile] = [_DEFAULTS] if limits.use_default_ignores else []
    if limits.use_gitignore and (exclude := _git_exclude(tree, limits)):
        stack.append(exclude)
    _walk_dir(tree, "", 0, stack, limits, res)
    return res


def _git_exclude(tree: Tree, limits: PackLimits) -> IgnoreFile | None:
    """The repository's `.git/info/exclude` (below every .gitignore), when the root is a git working tree."""
    steps = (("", ".git", Entry.DIR), (".git", "info", Entry.DIR), (".git/info", "exclude", Entry.FILE))
    try:
        for parent, name, kind in steps:
            if (name, kind) not in tree.list(parent):
                return None
        data = tree.read(".git/info/exclude", limits.max_file_bytes)
    except OSError:
        return None
    return IgnoreFile(data.decode("utf-8", "replace"), "", ".git/info/exclude")


def _ignored(rel: str, name: str, is_dir: bool, stack: list[IgnoreFile]) -> str | None:
    """The skip reason when an ignore file excludes `rel`; deeper files win, last rule wins."""
    for ig in reversed(stack):
        sub = rel[len(ig.base) + 1:] if ig.base else rel
        rule = ig.decide(sub, name, is_dir)
        if rule is not None:
            if rule.negate:
                return None
            where = f"{ig.base}/{ig.origin}" if ig.base else ig.origin
            category = DEFAULT if ig.origin == "default ignores" else GITIGNORED
            return f"{category}: {rule.source!r} in {where}"
    return None


def bad_name(name: str) -> str | None:
    """Why a file name cannot be shown in a header (not UTF-8, or control characters), or None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"{BAD_NAME}: not valid UTF-8"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"{BAD_NAME}: control characters"
    return None


def _walk_dir(tree: Tree, rel: str, depth: int, stack: list[IgnoreFile], limits: PackLimits, res: WalkResult):
    try:
        children = sorted(tree.list(rel))
    except OSError as e:
        res.skipped.append(Skipped(rel + "/", f"{UNREADABLE}: {e.strerror or e}"))
        return
    pushed = False
    if limits.use_gitignore and (".gitignore", Entry.FILE) in children:
        try:  # an unreadable .gitignore is reported when the file itself is packed
            data = tree.read(_join(rel, ".gitignore"), limits.max_file_bytes)
            stack.append(IgnoreFile(data.decode("utf-8", "replace"), rel))
            pushed = True
        except OSError:
            pass
    try:
        for name, kind in children:
            path = _join(rel, name)
            if why := bad_name(name):
                res.skipped.append(Skipped(repr(path)[1:-1], why))  # escaped, so it prints on one line
                continue
            reason = _ignored(path, name, kind == Entry.DIR, stack)
            if reason:
                res.skipped.append(Skipped(path + ("/" if kind == Entry.DIR else ""), reason))
            elif kind == Entry.DIR:
                if depth + 1 > limits.max_depth:
                    res.skipped.append(Skipped(path + "/", f"{TOO_DEEP}: more than {limits.max_depth} folder levels"))
                else:
                    _walk_dir(tree, path, depth + 1, stack, limits, res)
            elif kind == Entry.SYMLINK:
                try:
                    target, inside = tree.link_target(path)
                except OSError:
                    target, inside = "?", False
                where = "inside the tree, not followed" if inside else "points out of the tree"
                res.skipped.append(Skipped(path, f"{SYMLINK}: -> {target} ({where})"))
            elif kind == Entry.OTHER:
                res.skipped.append(Skipped(path, f"{SPECIAL}: not a regular file (device, fifo or socket)"))
            else:
                _add_file(tree, path, limits, res)
    finally:
        if pushed:
            stack.pop()


def _add_file(tree: Tree, path: str, limits: PackLimits, res: WalkResult) -> None:
    try:
        data = tree.read(path, limits.max_file_bytes)
    except OSError as e:
        res.skipped.append(Skipped(path, f"{UNREADABLE}: {e.strerror or e}"))
        return
    if len(data) > limits.max_file_bytes:
        res.skipped.append(Skipped(path, f"{TOO_BIG}: larger than {limits.max_file_bytes} bytes"))
        return
    text, why = decode(data)
    if text is None:
        res.skipped.append(Skipped(path, why))
        return
    if len(res.files) >= limits.max_files:
        raise CodebaseTooLarge(f"more than {limits.max_files} text files to pack (max_files); "
                               f"narrow the input or raise the cap")
    res.total_bytes += len(data)
    if res.total_bytes > limits.max_total_bytes:
        raise CodebaseTooLarge(f"more than {limits.max_total_bytes} bytes of text to pack (max_total_bytes), "
                               f"reached at {path}; narrow the input or raise the cap")
    res.files.append(TextFile(path, text, len(data)))


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def category(reason: str) -> str:
    return reason.split(":", 1)[0]
