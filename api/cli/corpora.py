"""What `wholedoc corpus` and `wholedoc batch` share: the /v1/corpora and /v1/batches calls, a corpus found by name,
and paths turned into ready documents (a PDF file, every PDF directly in a folder, or with `codebase` a folder or an
archive as one codebase document)."""

import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from api.cli.follow import ready_document
from api.cli.output import err
from api.cli.remote import ApiClient, ApiError

ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")


def call(client: ApiClient, method: str, url: str, **kw) -> dict:
    """One API call (a POST with its Idempotency-Key, a short 429 waited out); ApiError on an error answer."""
    return client._check(client._send(method, url, **kw))


def find_corpus(client: ApiClient, name: str) -> dict | None:
    after = None
    while True:
        page = call(client, "GET", "/v1/corpora", params={"limit": 200} | ({"after": after} if after else {}))
        for corpus in page["data"]:
            if corpus["name"] == name:
                return corpus
        if not page["has_more"]:
            return None
        after = page["last_id"]


def need_corpus(client: ApiClient, name: str) -> dict:
    corpus = find_corpus(client, name)
    if corpus is None:
        raise ApiError(404, "not_found", f"no corpus named {name!r}; make it with: wholedoc corpus create {name}")
    return corpus


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVES)


@contextmanager
def _packed(folder: Path) -> Iterator[Path]:
    """A folder as a .tar.gz named after it (regular files only; the worker packs it like an uploaded archive)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{folder.resolve().name or 'codebase'}.tar.gz"
        with tarfile.open(out, "w:gz") as tar:
            for f in sorted(folder.rglob("*")):
                if f.is_file() and not f.is_symlink():
                    tar.add(f, arcname=str(f.relative_to(folder)), recursive=False)
        yield out


def expand(paths: list[str], codebase: bool) -> list[Path]:
    """The files to upload, one document each; ValueError naming a path that is not one."""
    out = []
    for raw in paths:
        path = Path(raw)
        if codebase:
            if not (path.is_dir() or (path.is_file() and _is_archive(path))):
                raise ValueError(f"{raw}: with --codebase give a folder or an archive (.zip, .tar, .tar.gz)")
            out.append(path)
        elif path.is_dir():
            pdfs = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".pdf")
            if not pdfs:
                raise ValueError(f"{raw}: no PDF directly in this folder (a codebase? add --codebase)")
            out += pdfs
        elif path.is_file():
            if path.suffix.lower() != ".pdf":
                raise ValueError(f"{raw}: not a PDF (for a codebase folder or archive add --codebase)")
            out.append(path)
        else:
            raise ValueError(f"{raw}: no such file or folder")
    return out


def upload_ready(client: ApiClient, path: Path) -> dict | None:
    """Upload one file or packed folder and follow its extraction: the ready document, or None (reason printed)."""
    if path.is_dir():
        with _packed(path) as archive:
            return ready_document(client, archive)
    return ready_document(client, path)


def add_to_corpus(client: ApiClient, corpus: dict, paths: list[Path]) -> tuple[list[dict], int, int]:
    """Upload each path and add the ready ones to the corpus: (the ready documents, how many of them the corpus did
    not have before (the API's count), how many paths failed)."""
    docs, added, failed = [], 0, 0
    for path in paths:
        doc = upload_ready(client, path)
        if doc is None:
            failed += 1
            continue
        docs.append(doc)
    if docs:
        added = call(client, "POST", f"/v1/corpora/{corpus['id']}/documents",
                     json={"document_ids": [d["id"] for d in docs]})["added"]
    if failed:
        err(f"{failed} of {len(paths)} could not be added (see above)")
    return docs, added, failed
