"""The snapshot format: one safetensors file per stored prefix (docs/prefix-store.md#format).

Tensors, per main layer l: `rows.l` [blocks, 128/m, head_dim] (compressed rows, CSA and HCA), `keys.l`
[blocks, 128/m, index_head_dim] (CSA indexer keys) and, when the window state at the prefix's end was captured,
`window.l` [128, head_dim] (the raw window ring, slot row = position % 128) and `carry.l.j` (CSA overlap carries:
j = 0/1 the compressor's kv/score, 2/3 the indexer's). `tail.k.window.l` / `tail.k.carry.l.j`: the same window
state at an earlier block count k near the prompt's end (where another request about the same document leaves the
prefix: the task after the document), listed in the metadata's `tails`. The header's metadata holds the format
version, the model fingerprint, the salted block-hash chain (hex, comma-separated) and a sha256 over every tensor's
name and bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from inference.prefix_store.errors import SnapshotRejected
from inference.prefix_store.fingerprint import FORMAT_VERSION

HEADER_LEN_BYTES = 8


@dataclass
class Snapshot:
    """The cache of a prefix of whole blocks: `block_keys[i]` is block i's chained key (it names the tokens, the
    cache salt and the model); per layer rows and keys (None where the layer has none); window and carries only when
    the state at the end of the last block was captured (else a restore recomputes the trailing window)."""

    block_keys: list[bytes]
    rows: list[torch.Tensor | None]
    keys: list[torch.Tensor | None]
    window: list[torch.Tensor] | None = None
    carries: list[tuple] | None = None  # per layer (kv, score, index kv, index score), each a tensor or None
    # window state (window, carries) at earlier block counts k < num_blocks: a restore of only the first k blocks
    # then resumes exactly there too
    tails: dict[int, tuple[list, list]] = field(default_factory=dict)

    @property
    def num_blocks(self) -> int:
        return len(self.block_keys)

    @property
    def has_window(self) -> bool:
        return self.window is not None

    def history_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.rows + self.keys if t is not None)

    def truncate(self, k: int) -> Snapshot:
        """The first k blocks, with the window state at k when it holds one there (the end's, or a tail's)."""
        if k == self.num_blocks:
            return self
        cut = lambda ts: [None if t is None else t[:k] for t in ts]
        window, carries = self.tails.get(k, (None, None))
        return Snapshot(self.block_keys[:k], cut(self.rows), cut(self.keys), window, carries,
                        {j: w for j, w in self.tails.items() if j < k})


def _window_tensors(out: dict, prefix: str, window: list, carries: list | None) -> None:
    for i, w in enumerate(window):
        out[f"{prefix}window.{i}"] = w.contiguous()
    for i, carry in enumerate(carries or []):
        for j, t in enumerate(carry):
            if t is not None:
                out[f"{prefix}carry.{i}.{j}"] = t.contiguous()


def _tensors(snap: Snapshot) -> dict[str, torch.Tensor]:
    out = {}
    for i, (r, k) in enumerate(zip(snap.rows, snap.keys)):
        if r is not None:
            out[f"rows.{i}"] = r.contiguous()
        if k is not None:
            out[f"keys.{i}"] = k.contiguous()
    if snap.window is not None:
        _window_tensors(out, "", snap.window, snap.carries)
    for k, (window, carries) in snap.tails.items():
        _window_tensors(out, f"tail.{k}.", window, carries)
    return out


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\0".encode())
        h.update(memoryview(t.contiguous().reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def encode(snap: Snapshot, fingerprint: str) -> bytes:
    """The file's bytes."""
    tensors = _tensors(snap)
    meta = {"format": str(FORMAT_VERSION), "fingerprint": fingerprint, "num_layers": str(len(snap.rows)),
            "blocks": ",".join(k.hex() for k in snap.block_keys), "window": "1" if snap.has_window else "0",
            "tails": ",".join(str(k) for k in sorted(snap.tails)), "checksum": checksum(tensors)}
    return st_save(tensors, metadata=meta)


def parse_header(data: bytes) -> tuple[dict, int]:
    """(header JSON, total file length it describes) from the file's first bytes; SnapshotRejected if they are
    not a snapshot header. `data` may be only a prefix of the file: HEADER_LEN_BYTES + the header length."""
    if len(data) < HEADER_LEN_BYTES:
        raise SnapshotRejected("truncated", f"{len(data)} bytes, shorter than the header length field")
    n = int.from_bytes(data[:HEADER_LEN_BYTES], "little")
    if n > 64 << 20:
        raise SnapshotRejected("corrupt", f"header length {n} is implausible")
    if len(data) < HEADER_LEN_BYTES + n:
        raise SnapshotRejected("truncated", f"{len(data)} bytes, shorter than its {n}-byte header")
    try:
        header = json.loads(data[HEADER_LEN_BYTES : HEADER_LEN_BYTES + n])
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        meta = header["__metadata__"]
        meta["blocks"]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise SnapshotRejected("corrupt", f"unreadable header: {e!r}") from None
    if meta.get("format") != str(FORMAT_VERSION):
        raise SnapshotRejected("format", f"format {meta.get('format')!r}, this engine reads {FORMAT_VERSION}")
    return header, HEADER_LEN_BYTES + n + end


def header_blocks(header: dict) -> list[bytes]:
    try:
        return [bytes.fromhex(x) for x in header["__metadata__"]["blocks"].split(",") if x]
    except ValueError:
        raise SnapshotRejected("corrupt", "block hashes are not hex") from None


def header_tails(header: dict) -> set[int]:
    """Block counts below the end at which the snapshot also holds the window state (older files: none)."""
    try:
        return {int(x) for x in header["__metadata__"].get("tails", "").split(",") if x}
    except ValueError:
        raise SnapshotRejected("corrupt", "tails are not block counts") from None


def common_blocks(stored: list[bytes], wanted: list[bytes]) -> int:
    k = 0
    while k < min(len(stored), len(wanted)) and stored[k] == wanted[k]:
        k += 1
    return k


def check_header(header: dict, fingerprint: str, wanted: list[bytes]) -> int:
    """How many leading blocks of `wanted` (a request's chain) the snapshot holds; SnapshotRejected if none, or if it
    belongs to another model."""
    meta = header["__metadata__"]
    if meta.get("fingerprint") != fingerprint:
        raise SnapshotRejected("fingerprint", f"written for model {meta.get('fingerprint')!r}, not {fingerprint!r}")
    k = common_blocks(header_blocks(header), wanted)
    if k == 0:
        raise SnapshotRejected("chain", "its block hashes are not this request's (another salt, model or text)")
    return k


def decode(data: bytes, fingerprint: str, wanted: list[bytes], num_layers: int) -> Snapshot:
    """The snapshot in `data`, cut to the blocks it shares with `wanted`; SnapshotRejected when it is truncated,
    corrupt (checksum), of another model or of another chain."""
    header, length = parse_header(data)
    if len(data) < length:
        raise SnapshotRejected("truncated", f"{len(data)} bytes, its header describes {length}")
    if len(data) > length:
        raise SnapshotRejected("corrupt", f"{len(data) - length} bytes after the last tensor")
    k = check_header(header, fingerprint, wanted)
    meta = header["__metadata__"]
    if meta.get("num_layers") != str(num_layers):
        raise SnapshotRejected("fingerprint", f"{meta.get('num_layers')} layers, the model has {num_layers}")
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors' own parse error
        raise SnapshotRejected("corrupt", f"safetensors could not read it: {e}") from None
    if checksum(tensors) != meta.get("checksum"):
        raise SnapshotRejected("corrupt", "its tensors do not match the header's checksum")
    blocks = header_blocks(header)
    window = None
    carries = None
    if meta.get("window") == "1":
        window, carries = _window_of(tensors, "", num_layers)
    tails = {}
    for j in sorted(header_tails(header)):
        if not 0 < j < len(blocks):
            raise SnapshotRejected("corrupt", f"a tail window at block {j} of {len(blocks)}")
        tails[j] = _window_of(tensors, f"tail.{j}.", num_layers)
    snap = Snapshot(blocks, [tensors.get(f"rows.{i}") for i in range(num_layers)],
                    [tensors.get(f"keys.{i}") for i in range(num_layers)], window, carries, tails)
    for t in snap.rows + snap.keys:
        if t is not None and t.shape[0] != len(blocks):
            raise SnapshotRejected("corrupt", f"a tensor holds {t.shape[0]} blocks, the header {len(blocks)}")
    return snap.truncate(k)


def _window_of(tensors: dict, prefix: str, num_layers: int) -> tuple[list, list]:
    window = [tensors.get(f"{prefix}window.{i}") for i in range(num_layers)]
    if any(w is None for w in window):
        raise SnapshotRejected("corrupt", "window state is missing layers")
    return window, [tuple(tensors.get(f"{prefix}carry.{i}.{j}") for j in range(4)) for i in range(num_layers)]
