"""Streaming uploads: request body → (multipart file part or raw body) → blocking reader for the blob store.

Nothing is spooled: bytes flow from the socket through a bounded queue into `BlobStore.put_stream`,
which hashes them as it writes, and the byte count is checked as they arrive (over the limit → 413).
"""

import asyncio
import io
import queue
from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from pipeline.errors import BlobTooLarge, PipelineError, UnsupportedFormat

SNIFF_BYTES = 512
MULTIPART_SLACK = 1 << 20
_EOF = object()


def sniff(head: bytes) -> tuple[str, str]:
    """(kind, media_type) from the first bytes of an upload; anything else is UnsupportedFormat."""
    if head.startswith(b"%PDF-"):
        return "pdf", "application/pdf"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "codebase", "application/zip"
    if head.startswith(b"\x1f\x8b"):
        return "codebase", "application/gzip"
    if head.startswith(b"BZh"):
        return "codebase", "application/x-bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "codebase", "application/x-xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "codebase", "application/x-tar"
    raise UnsupportedFormat("unsupported upload: send a PDF, or a codebase as .zip / .tar / .tar.gz "
                            f"(the first bytes were {head[:8]!r})")


class QueueReader(io.RawIOBase):
    """A blocking file-like object fed chunk by chunk from the event loop (read on a worker thread)."""

    def __init__(self, maxsize: int = 8):
        self.q: queue.Queue = queue.Queue(maxsize)
        self.buf = b""
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.buf and not self.done:
            item = self.q.get()
            if item is _EOF:
                self.done = True
            elif isinstance(item, BaseException):
                self.done = True
                raise item
            else:
                self.buf = item
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


def too_large(limit: int) -> BlobTooLarge:
    return BlobTooLarge(f"upload is larger than the limit of {limit} bytes ({limit / 2**20:.0f} MiB)")


async def file_chunks(body: AsyncIterator[bytes], content_type: str, limit: int
                      ) -> AsyncIterator[tuple[str | None, bytes]]:
    """Yield (filename, chunk) of the upload: the first file part of a multipart body, else the raw body.

    A multipart body may carry at most 1 MiB besides the file (other fields, framing) before it is too large.
    """
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data":
        async for chunk in body:
            yield None, chunk
        return
    boundary = params.get(b"boundary")
    if not boundary:
        raise PipelineError("multipart upload without a boundary")
    state = {"in_file": False, "filename": None, "header": b"", "field": b"", "done": False}
    out: list[bytes] = []

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["header"] += data[start:end]

    def on_header_end():
        if state["field"].lower() == b"content-disposition":
            _, p = parse_options_header(state["header"])
            if b"filename" in p and not state["done"]:
                state["in_file"], state["filename"] = True, p[b"filename"].decode(errors="replace")
        state["field"], state["header"] = b"", b""

    def on_part_data(data, start, end):
        if state["in_file"]:
            out.append(bytes(data[start:end]))

    def on_part_end():
        if state["in_file"]:
            state["in_file"], state["done"] = False, True

    parser = MultipartParser(boundary, {"on_header_field": on_header_field, "on_header_value": on_header_value,
                                        "on_header_end": on_header_end, "on_part_data": on_part_data,
                                        "on_part_end": on_part_end})
    raw = 0
    try:
        async for chunk in body:
            raw += len(chunk)
            if raw > limit + MULTIPART_SLACK:
                raise too_large(limit)
            parser.write(chunk)
            for piece in out:
                yield state["filename"], piece
            out.clear()
        parser.finalize()
    except MultipartParseError as exc:
        raise PipelineError(f"malformed multipart/form-data body: {exc}") from exc
    for piece in out:
        yield state["filename"], piece
    if state["filename"] is None:
        raise PipelineError("multipart upload has no file part (send the document as a form field `file`)")


async def _feed(reader: QueueReader, put: asyncio.Task, item) -> None:
    """Hand one chunk to the store's thread; if the store already stopped, surface its error instead of blocking."""
    while True:
        if put.done():
            await put  # raises the store's error
            raise PipelineError("the blob store stopped reading before the upload ended")
        try:
            await asyncio.to_thread(reader.q.put, item, True, 0.5)
            return
        except queue.Full:
            continue


def _abort(reader: QueueReader, exc: Exception) -> None:
    """Make the store's reader raise `exc` next, dropping chunks it has not read yet."""
    while True:
        try:
            reader.q.put_nowait(exc)
            return
        except queue.Full:
            try:
                reader.q.get_nowait()
            except queue.Empty:
                pass


async def stream_to_store(store, tenant_id: str, body: AsyncIterator[bytes], content_type: str, limit: int):
    """Stream the upload into the blob store. Returns (BlobRef, filename, kind, media_type)."""
    reader = QueueReader()
    put = asyncio.create_task(asyncio.to_thread(store.put_stream, tenant_id, io.BufferedReader(reader),
                                                max_bytes=limit))
    head, filename, kind, media_type, total = b"", None, None, None, 0
    try:
        async for name, chunk in file_chunks(body, content_type, limit):
            filename = name
            total += len(chunk)
            if total > limit:
                raise too_large(limit)
            if kind is None:
                head += chunk
                if len(head) < SNIFF_BYTES:
                    continue
                kind, media_type = sniff(head)
                chunk, head = head, b""
            await _feed(reader, put, chunk)
        if kind is None:
            if not head:
                raise UnsupportedFormat("the upload is empty")
            kind, media_type = sniff(head)
            await _feed(reader, put, head)
        await _feed(reader, put, _EOF)
        ref = await put
    except BaseException as exc:
        _abort(reader, exc if isinstance(exc, Exception) else PipelineError("upload aborted"))
        try:
            await put
        except Exception:
            pass
        raise
    return ref, filename, kind, media_type
