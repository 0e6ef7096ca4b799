"""Packing folders: golden text, .gitignore rules, default ignores, binary sniffing, caps, symlinks."""

import os
from pathlib import Path

import pytest

from pipeline.codebase import PackLimits, pack_codebase
from pipeline.codebase.gitignore import IgnoreFile
from pipeline.errors import CodebaseTooLarge, EmptyCodebase, IngestError

GOLDEN = Path(__file__).parent / "golden" / "codebase"
REGEN = os.environ.get("WHOLEDOC_REGEN_GOLDEN") == "1"


def make_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


SMALL = {
    "README.md": "# Demo\n\nA tiny project.\n",
    "src/app.py": "import os\n\n\ndef main():\n    return os.getcwd()\n",
    "src/util/strings.py": "def shout(s):\n    return s.upper() + '!'\n",
    "src/util/__init__.py": "",
    "docs/guide.txt": "Windows line\r\nendings\r\n",
    "notes.txt": "no final newline",
    ".gitignore": "*.log\n/secret.txt\n",
    "debug.log": "ignored\n",
    "secret.txt": "ignored\n",
    "node_modules/left-pad/index.js": "module.exports = 1\n",
    "poetry.lock": "[[package]]\n",
    "logo.bin": b"\x89PNG\x00\x00\x01",
}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden {path}; run with WHOLEDOC_REGEN_GOLDEN=1 once and review it"
    assert text == path.read_text(encoding="utf-8")


def test_regenerate_flag_is_off():
    """The golden files are only ever rewritten by hand; CI must never regenerate them."""
    assert not REGEN, "WHOLEDOC_REGEN_GOLDEN=1 is set: unset it, it would overwrite the expected outputs"


@pytest.mark.parametrize("line_numbers", [False, True])
def test_small_tree_matches_golden(tmp_path, line_numbers):
    doc = pack_codebase(make_tree(tmp_path / "demo", SMALL), line_numbers=line_numbers)
    check_golden(f"demo{'_numbered' if line_numbers else ''}.txt", doc.text)


def test_small_tree_structure_and_metadata(tmp_path):
    doc = pack_codebase(make_tree(tmp_path / "demo", SMALL))
    assert [s.anchor for s in doc.sections] == [
        ".gitignore", "README.md", "docs/guide.txt", "notes.txt", "src/app.py",
        "src/util/__init__.py", "src/util/strings.py"]
    for s in doc.sections:
        assert s.text.startswith(f"===== {s.anchor} =====\n") and s.text in doc.text
    assert doc.text.endswith("".join(s.text for s in doc.sections))
    assert "Windows line\nendings\n" in doc.text and "\r" not in doc.text
    assert {s.path: s.reason.split(":")[0] for s in doc.skipped} == {
        "debug.log": "ignored by .gitignore", "secret.txt": "ignored by .gitignore",
        "node_modules/": "ignored by default", "poetry.lock": "ignored by default", "logo.bin": "binary"}
    assert doc.metadata["file_count"] == 7
    assert doc.metadata["skipped_by_reason"] == {"binary": 1, "ignored by .gitignore": 2, "ignored by default": 2}
    assert doc.metadata["total_bytes"] == sum(len(SMALL[s.anchor]) for s in doc.sections)


def test_packing_is_deterministic_whatever_the_creation_order(tmp_path):
    a = make_tree(tmp_path / "a" / "demo", SMALL)
    b = make_tree(tmp_path / "b" / "demo", dict(reversed(list(SMALL.items()))))
    assert pack_codebase(a).text == pack_codebase(b).text == pack_codebase(a).text


def test_line_numbers_match_the_file_lines(tmp_path):
    lines = [f"line {i}" for i in range(1, 121)]
    root = make_tree(tmp_path / "p", {"big.py": "\n".join(lines) + "\n"})
    doc = pack_codebase(root, line_numbers=True)
    assert "\n120 | line 120\n" in doc.text
    assert "\n  7 | line 7\n" in doc.text


def test_nested_gitignore_negation_dir_only_anchored_and_double_star(tmp_path):
    root = make_tree(tmp_path / "r", {
        ".gitignore": "*.tmp\n!keep.tmp\nout/\n/top_only.txt\ndocs/**/draft.md\nlogs\n",
        "keep.tmp": "kept by negation\n",
        "a.tmp": "x\n",
        "top_only.txt": "x\n",
        "sub/top_only.txt": "anchored pattern: only the root one is ignored\n",
        "out/gen.py": "x\n",
        "sub/out": "a FILE named out: dir-only pattern does not apply\n",
        "docs/draft.md": "zero folders matched by **\n",
        "docs/a/b/draft.md": "x\n",
        "docs/a/final.md": "kept\n",
        "logs/x.txt": "x\n",
        "pkg/.gitignore": "*.py\n!main.py\n",
        "pkg/main.py": "kept: nested negation\n",
        "pkg/helper.py": "x\n",
        "pkg/deep/more.py": "x: nested rule applies below its folder\n",
        "pkg/a.tmp": "x: root rule still applies\n",
        "other/helper.py": "kept: the nested rule is local to pkg/\n",
    })
    got = [s.anchor for s in pack_codebase(root).sections]
    assert got == [".gitignore", "docs/a/final.md", "keep.tmp", "other/helper.py", "pkg/.gitignore",
                   "pkg/main.py", "sub/out", "sub/top_only.txt"]


def test_reinclude_under_an_ignored_folder_is_impossible_as_in_git(tmp_path):
    root = make_tree(tmp_path / "r", {".gitignore": "build/\n!build/keep.py\n", "build/keep.py": "x\n", "a.py": ""})
    assert [s.anchor for s in pack_codebase(root).sections] == [".gitignore", "a.py"]


@pytest.mark.parametrize("patterns", [
    ["*.py", "!b.py"], ["/a/*.txt", "**/c/*.md"], ["x/**", "!x/keep"], ["[ab]*.txt", "?.md"],
    ["a/*", "!a/keep.txt"], ["**/c", "d/**/e.txt"], ["\\#hash", "sp\\ ", "*.TXT"], ["c/*.md", "!c/z.md"],
])
def test_gitignore_agrees_with_pathspec(patterns):
    """Oracle: pathspec's GitIgnoreSpec (what gitingest uses). Not for `dir/` + `!dir/file`: pathspec re-includes
    the file, git does not (see test_reinclude_under_an_ignored_folder_is_impossible_as_in_git)."""
    pathspec = pytest.importorskip("pathspec")
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    ig = IgnoreFile(patterns)
    paths = ["a.py", "b.py", "a/b.py", "a/x.txt", "a/b/x.txt", "b.txt", "c.txt", "a/c/y.md", "c/y.md", "c/z.md",
             "x/keep", "x/y/z", "k.md", "kk.md", "a/keep.txt", "c", "q/c", "d/e.txt", "d/1/2/e.txt", "#hash",
             "sp ", "A.TXT"]
    for path in paths:
        parts = path.split("/")
        pruned = False
        for i in range(1, len(parts)):
            r = ig.decide("/".join(parts[:i]), parts[i - 1], True)
            if r is not None and not r.negate:
                pruned = True
                break
        r = ig.decide(path, parts[-1], False)
        mine = pruned or (r is not None and not r.negate)
        assert mine == spec.match_file(path), (patterns, path)


def test_binary_and_encodings(tmp_path):
    root = make_tree(tmp_path / "e", {
        "nul.dat": b"abc\x00def",
        "latin1.txt": "café".encode("latin-1"),
        "bom.txt": b"\xef\xbb\xbfwith BOM\n",
        "utf16.txt": "wide text\r\n".encode("utf-16"),
        "fake16.bin": b"\xff\xfe" + bytes(64),  # a BOM, then binary zeros
        "ok.txt": "plain\n",
    })
    doc = pack_codebase(root)
    assert [s.anchor for s in doc.sections] == ["bom.txt", "ok.txt", "utf16.txt"]
    assert "===== bom.txt =====\nwith BOM\n" in doc.text and "\ufeff" not in doc.text
    assert "===== utf16.txt =====\nwide text\n" in doc.text
    reasons = {s.path: s.reason for s in doc.skipped}
    assert reasons["nul.dat"].startswith("binary:") and reasons["latin1.txt"].startswith("not UTF-8 text:")
    assert reasons["fake16.bin"].startswith("binary:")


def test_per_file_cap_skips_and_total_caps_fail(tmp_path):
    root = make_tree(tmp_path / "c", {"small.py": "x = 1\n", "big.py": "y" * 5000, "mid.py": "z" * 900})
    doc = pack_codebase(root, limits=PackLimits(max_file_bytes=1000))
    assert [s.anchor for s in doc.sections] == ["mid.py", "small.py"]
    assert doc.skipped[0].path == "big.py" and "1000 bytes" in doc.skipped[0].reason
    with pytest.raises(CodebaseTooLarge, match="max_total_bytes"):
        pack_codebase(root, limits=PackLimits(max_total_bytes=500))
    with pytest.raises(CodebaseTooLarge, match="max_files"):
        pack_codebase(root, limits=PackLimits(max_files=1))


def test_depth_cap(tmp_path):
    root = make_tree(tmp_path / "d", {"a/b/c/d/e.py": "x\n", "a/top.py": "y\n"})
    doc = pack_codebase(root, limits=PackLimits(max_depth=2))
    assert [s.anchor for s in doc.sections] == ["a/top.py"]
    assert doc.skipped[0].path == "a/b/c/" and doc.skipped[0].reason.startswith("too deep")


def test_symlinks_are_never_followed(tmp_path):
    outside = make_tree(tmp_path / "outside", {"secret.txt": "TOP SECRET\n"})
    root = make_tree(tmp_path / "s", {"real.py": "print('hi')\n", "dir/inner.py": "x = 2\n"})
    (root / "to_secret.txt").symlink_to(outside / "secret.txt")
    (root / "to_outside").symlink_to(outside, target_is_directory=True)
    (root / "to_real.py").symlink_to("real.py")
    (root / "loop").symlink_to(".", target_is_directory=True)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    doc = pack_codebase(root)
    assert "TOP SECRET" not in doc.text
    assert [s.anchor for s in doc.sections] == ["dir/inner.py", "real.py"]
    reasons = {s.path: s.reason for s in doc.skipped}
    assert set(reasons) == {"to_secret.txt", "to_outside", "to_real.py", "loop", "dangling"}
    assert "out of the tree" in reasons["to_secret.txt"] and "out of the tree" in reasons["to_outside"]
    assert "inside the tree" in reasons["to_real.py"] and "inside the tree" in reasons["loop"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_fifo_is_skipped_without_blocking(tmp_path):
    root = make_tree(tmp_path / "f", {"a.py": "x\n"})
    os.mkfifo(root / "pipe")
    doc = pack_codebase(root)
    assert [s.anchor for s in doc.sections] == ["a.py"]
    assert doc.skipped[0].path == "pipe" and doc.skipped[0].reason.startswith("special file")


def test_empty_and_missing_inputs_fail_clearly(tmp_path):
    root = make_tree(tmp_path / "empty", {"img.png": b"\x89PNG", "blob.dat": b"\x00\x01"})
    with pytest.raises(EmptyCodebase, match="binary: 1.*ignored by default: 1"):
        pack_codebase(root)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(EmptyCodebase, match="empty"):
        pack_codebase(tmp_path / "nothing")
    with pytest.raises(IngestError, match="does not exist"):
        pack_codebase(tmp_path / "missing")
    (tmp_path / "plain.txt").write_text("not an archive")
    with pytest.raises(IngestError, match="neither a folder nor"):
        pack_codebase(tmp_path / "plain.txt")


def test_git_working_tree_honours_info_exclude_and_skips_vcs_folders(tmp_path):
    root = make_tree(tmp_path / "g", {
        ".git/HEAD": "ref: refs/heads/main\n", ".git/info/exclude": "local_only.txt\n",
        ".gitignore": "!kept.txt\n", "local_only.txt": "x\n", "kept.txt": "y\n", "a.py": "z\n",
        "sub/.git": "gitdir: ../.git/modules/sub\n", "sub/b.py": "w\n",
    })
    doc = pack_codebase(root)
    assert [s.anchor for s in doc.sections] == [".gitignore", "a.py", "kept.txt", "sub/b.py"]
    reasons = {s.path: s.reason for s in doc.skipped}
    assert reasons == {".git/": "ignored by default: '.git' in default ignores",
                       "local_only.txt": "ignored by .gitignore: 'local_only.txt' in .git/info/exclude",
                       "sub/.git": "ignored by default: '.git' in default ignores"}
    assert pack_codebase(root, limits=PackLimits(use_gitignore=False)).metadata["file_count"] == 5
    assert pack_codebase(root, limits=PackLimits(use_default_ignores=False)).metadata["file_count"] == 7


def test_unusable_file_names_are_skipped_with_an_escaped_path(tmp_path):
    root = make_tree(tmp_path / "n", {"ok.py": "x\n", "new\nline.py": "header injection\n"})
    fd = os.open(os.path.join(os.fsencode(root), b"bad\xff.py"), os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    doc = pack_codebase(root)
    assert [s.anchor for s in doc.sections] == ["ok.py"]
    assert sorted((s.path, s.reason) for s in doc.skipped) == [
        ("bad\\udcff.py", "unusable name: not valid UTF-8"), ("new\\nline.py", "unusable name: control characters")]
    doc.text.encode("utf-8")


def test_unreadable_folders_are_skipped_not_fatal(tmp_path):
    """A folder that cannot be listed (permissions, vanished meanwhile) is a skipped entry with the OS reason."""
    from pipeline.codebase.tree import DirTree
    from pipeline.codebase.walk import walk

    class Flaky(DirTree):
        def list(self, rel):
            if rel == "locked":
                raise PermissionError(13, "Permission denied")
            return super().list(rel)

    root = make_tree(tmp_path / "u", {"locked/a.py": "x\n", "ok.py": "y\n"})
    res = walk(Flaky(str(root)))
    assert [f.path for f in res.files] == ["ok.py"]
    assert [(s.path, s.reason) for s in res.skipped] == [("locked/", "unreadable: Permission denied")]


@pytest.mark.parametrize("line_numbers", [False, True])
def test_file_body_gives_back_the_file_content(tmp_path, line_numbers):
    from pipeline.codebase import file_body

    root = make_tree(tmp_path / "demo", SMALL)
    doc = pack_codebase(root, line_numbers=line_numbers)
    for s in doc.sections:
        original = SMALL[s.anchor] if isinstance(SMALL[s.anchor], str) else ""
        expected = original.replace("\r\n", "\n")
        if expected and not expected.endswith("\n"):
            expected += "\n"
        assert file_body(s, line_numbers) == expected, s.anchor
