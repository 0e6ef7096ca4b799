"""A gitwildmatch (.gitignore) implementation: negation, dir-only and anchored patterns, `**`, escapes.

Each `.gitignore` becomes one `IgnoreFile` whose paths are relative to its folder. Within a file the last
matching pattern wins; a deeper file overrides a shallower one (the walker asks the deepest first).
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One pattern line: its source text, compiled regex, and flags."""

    source: str
    regex: re.Pattern
    negate: bool
    dir_only: bool
    anchored: bool  # matched against the whole relative path, else against the basename


def _class(pat: str, i: int) -> tuple[str, int] | None:
    """Translate a `[...]` class starting at pat[i] == '['; None when it is not closed (then '[' is literal)."""
    j = i + 1
    out = "["
    if j < len(pat) and pat[j] in "!^":
        out += "^"
        j += 1
    if j < len(pat) and pat[j] == "]":
        out += r"\]"
        j += 1
    while j < len(pat) and pat[j] != "]":
        c = pat[j]
        if c == "\\" and j + 1 < len(pat):
            j += 1
            c = pat[j]
        out += re.escape(c) if c not in "-" else "-"
        j += 1
    if j >= len(pat):
        return None
    return out + "]", j + 1


def translate(pat: str) -> str:
    """Regex source (without anchors) for a gitwildmatch pattern body (no `!`, no trailing `/`)."""
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            if pat.startswith("**", i) and (i == 0 or pat[i - 1] == "/") and (i + 2 == n or pat[i + 2] == "/"):
                if i + 2 == n:
                    out.append(".*")  # trailing `/**`: everything inside
                    i += 2
                else:
                    out.append("(?:.*/)?")  # leading `**/` or middle `/**/`: zero or more folders
                    i += 3
                continue
            while i < n and pat[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[" and (cls := _class(pat, i)):
            out.append(cls[0])
            i = cls[1]
            continue
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pat[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_line(line: str) -> Rule | None:
    """A `Rule` for one .gitignore line, or None for blanks and comments."""
    line = line.rstrip("\n").rstrip("\r")
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        stripped += " "  # an escaped trailing space is kept
    line = stripped
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    body = line[1:] if negate else line
    if body.startswith("\\") and body[1:2] in ("!", "#"):
        body = body[1:]
    dir_only = body.endswith("/")
    body = body.rstrip("/")
    if not body:
        return None
    anchored = "/" in body
    body = body.lstrip("/")
    if not body:
        return None
    try:
        regex = re.compile(translate(body) + r"\Z", re.DOTALL)
    except re.error:
        return None  # git ignores patterns it cannot parse
    return Rule(line, regex, negate, dir_only, anchored)


class IgnoreFile:
    """The rules of one ignore file, for paths relative to `base` (the folder holding it, '' for the root)."""

    def __init__(self, lines: list[str] | str, base: str = "", origin: str = ".gitignore"):
        if isinstance(lines, str):
            lines = lines.splitlines()
        self.base, self.origin = base, origin
        self.rules = [r for r in map(parse_line, lines) if r]
        self._rev = self.rules[::-1]
        # one combined regex per kind, to reject the common no-match case with a single search
        self._any_name = _union([r.regex.pattern for r in self.rules if not r.anchored])
        self._any_path = _union([r.regex.pattern for r in self.rules if r.anchored])

    def decide(self, rel: str, name: str, is_dir: bool) -> Rule | None:
        """The last rule matching `rel` (relative to `base`), or None. The caller checks `rule.negate`."""
        if not (self._any_name and self._any_name.match(name)) and not (self._any_path and self._any_path.match(rel)):
            return None
        for r in self._rev:
            if r.dir_only and not is_dir:
                continue
            if r.regex.match(rel if r.anchored else name):
                return r
        return None


def _union(patterns: list[str]) -> re.Pattern | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.DOTALL) if patterns else None
