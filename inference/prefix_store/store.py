"""The prefix store: looks up, restores, writes, deletes by tag and evicts snapshots (docs/prefix-store.md).

Every operation that touches the folder or bucket runs on this object's own threads: the engine only submits work
and polls futures, so a slow or dead store never stalls a step. Failures are counted and the prefix recomputed.

Layout (under the store's root, apart from tenant blobs under tenants/):
  prefixes/v<format>/<fingerprint>/<anchor key>/<blocks:08d>-<last block key>.safetensors   a snapshot
  … same name + ".used"                                                                          its last use
  prefixes/tags/<sha256(tag)[:32]>/<snapshot name>                                               tag markers
  prefixes/maintenance.lock                                                                      eviction lock
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from inference.prefix_store.backends import Backend, NotFound, ObjectInfo, backend_from_url
from inference.prefix_store.config import PrefixStoreConfig
from inference.prefix_store.errors import BadStoreUrl, SnapshotRejected, StoreUnavailable
from inference.prefix_store.fingerprint import FORMAT_VERSION
from inference.prefix_store.snapshot import (
    HEADER_LEN_BYTES,
    Snapshot,
    check_header,
    decode,
    encode,
    header_tails,
    parse_header,
)

log = logging.getLogger("inference.prefix_store")
ROOT = "prefixes/"
SUFFIX, USED = ".safetensors", ".used"
LOCK = ROOT + "maintenance.lock"
MAX_HEADER_READS = 4  # partial-match candidates whose headers one lookup reads
# a snapshot's directory is the key of its block ANCHOR_BLOCKS - 1 (its first block's when shorter): prompts that share
# a long preamble (a system prompt, a tenant's salt) still spread over one directory per document
ANCHOR_BLOCKS = 16
MAX_TAG_CHARS = 256


@dataclass(frozen=True)
class Plan:
    """What a lookup found: the snapshot `name` holds the request's first `blocks` blocks; `exact` when it holds the
    window state there (the whole snapshot, or one of its tails): the prefill then resumes with nothing recomputed."""

    name: str
    blocks: int
    exact: bool


def tag_hash(tag: str) -> str:
    if not isinstance(tag, str) or not 1 <= len(tag) <= MAX_TAG_CHARS:
        raise BadStoreUrl(f"prefix_tag must be 1-{MAX_TAG_CHARS} characters")
    return hashlib.sha256(tag.encode()).hexdigest()[:32]


class PrefixStore:
    """Snapshots of one model (its fingerprint) in one folder or bucket."""

    def __init__(self, backend: Backend, config: PrefixStoreConfig, fingerprint: str, num_layers: int,
                 *, maintain: bool = True):
        self.backend, self.config, self.fingerprint, self.num_layers = backend, config, fingerprint, num_layers
        self.base = f"{ROOT}v{FORMAT_VERSION}/{fingerprint}/"
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._pending_writes = 0
        self._reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prefix-read")
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefix-write")
        self._stop = threading.Event()
        self._maintainer = None
        if maintain:
            self._maintainer = threading.Thread(target=self._maintain_loop, name="prefix-maintain", daemon=True)
            self._maintainer.start()

    @classmethod
    def open(cls, config: PrefixStoreConfig, fingerprint: str, num_layers: int, **kw) -> PrefixStore:
        return cls(backend_from_url(config.url, config.access_key, config.secret_key, config.io_timeout_s), config,
                   fingerprint, num_layers, **kw)

    def close(self) -> None:
        self._stop.set()
        self._reads.shutdown(wait=False, cancel_futures=True)
        self._writes.shutdown(wait=False, cancel_futures=True)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters)

    ##### names #####

    def name_of(self, keys: list[bytes]) -> str:
        return f"{self.base}{self._anchor(keys).hex()}/{len(keys):08d}-{keys[-1].hex()}{SUFFIX}"

    @staticmethod
    def _anchor(keys: list[bytes]) -> bytes:
        return keys[ANCHOR_BLOCKS - 1] if len(keys) >= ANCHOR_BLOCKS else keys[0]

    @staticmethod
    def _parse(name: str) -> tuple[int, str] | None:
        leaf = name.rsplit("/", 1)[-1]
        if not leaf.endswith(SUFFIX):
            return None
        n, _, key = leaf[: -len(SUFFIX)].partition("-")
        return (int(n), key) if n.isdigit() and key else None

    ##### reads (store threads) #####

    def lookup(self, keys: list[bytes]) -> Plan | None:
        """The snapshot holding the longest leading part of `keys` (a request's block chain); reads the directories
        its snapshots can be in (anchored at its first block, and at block ANCHOR_BLOCKS when it is that long) and,
        for snapshots longer than the best exact match, their headers."""
        if not keys:
            return None
        best: Plan | None = None
        longer: list[tuple[int, str]] = []
        anchors = [keys[0]] + ([keys[ANCHOR_BLOCKS - 1]] if len(keys) >= ANCHOR_BLOCKS else [])
        listed = [info for a in anchors for info in self.backend.list(f"{self.base}{a.hex()}/")]
        for info in listed:
            parsed = self._parse(info.name)
            if parsed is None:
                continue
            n, last = parsed
            if n <= len(keys) and keys[n - 1].hex() == last:
                if best is None or n > best.blocks:
                    best = Plan(info.name, n, True)
            else:
                longer.append((n, info.name))
        for n, name in sorted(longer, reverse=True)[:MAX_HEADER_READS]:
            if best is not None and n <= best.blocks:
                break
            try:
                header = self._header(name)
                k = check_header(header, self.fingerprint, keys)
                whole = k in header_tails(header)  # it holds the window state there too
            except SnapshotRejected as e:
                self.count(f"ignored_{e.reason}")
                log.warning("ignoring prefix snapshot %s: %s", name, e)
                continue
            except NotFound:
                continue
            if best is None or k > best.blocks or (k == best.blocks and whole and not best.exact):
                best = Plan(name, k, whole)
        return best

    def _header(self, name: str) -> dict:
        head = self.backend.get(name, 0, HEADER_LEN_BYTES)
        if len(head) < HEADER_LEN_BYTES:
            parse_header(head)  # raises "truncated"
        n = int.from_bytes(head, "little")
        if n > 64 << 20:
            parse_header(head)  # raises "corrupt"
        return parse_header(head + self.backend.get(name, HEADER_LEN_BYTES, n))[0]

    def restore(self, keys: list[bytes], have_blocks: int = 0) -> Snapshot | None:
        """The stored cache of the longest leading part of `keys`, if it is longer than `have_blocks` (what memory
        already holds); None on a miss, a rejected snapshot (counted, deleted) or a store failure (counted)."""
        t0 = time.perf_counter()
        try:
            plan = self.lookup(keys)
            if plan is None or plan.blocks <= have_blocks:
                self.count("lookup_misses")
                return None
            data = self.backend.get(plan.name)
            try:
                snap = decode(data, self.fingerprint, keys[: plan.blocks], self.num_layers)
            except SnapshotRejected as e:
                self.count(f"ignored_{e.reason}")
                log.warning("ignoring prefix snapshot %s: %s; the prefix is recomputed", plan.name, e)
                self._delete_quietly(plan.name)
                return None
            self._touch(plan.name)
            self.count("restores")
            self.count("restored_bytes", len(data))
            log.info("restored %d blocks from %s (%d bytes, %.3f s)", snap.num_blocks, plan.name, len(data),
                     time.perf_counter() - t0)
            return snap
        except NotFound:
            self.count("lookup_misses")
            return None
        except StoreUnavailable as e:
            self.count("restore_failures")
            log.warning("prefix store unavailable for a restore: %s", e)
            return None

    def submit_restore(self, keys: list[bytes], have_blocks: int = 0) -> Future:
        return self._reads.submit(self.restore, keys, have_blocks)

    def probe(self, keys: list[bytes]) -> Plan | None:
        """What a restore would find (no tensor read); None on a miss or a store failure."""
        try:
            return self.lookup(keys)
        except StoreUnavailable:
            self.count("restore_failures")
            return None

    def _touch(self, name: str) -> None:
        """Record the last use (S3 keeps no access times): the .used marker's modification time."""
        try:
            self.backend.put(name + USED, str(time.time()).encode())
        except StoreUnavailable:
            pass

    def _delete_quietly(self, name: str) -> None:
        for n in (name, name + USED):
            try:
                self.backend.delete(n)
            except StoreUnavailable:
                pass

    ##### writes (the write thread) #####

    def submit_write(self, snap: Snapshot, tag: str | None = None) -> bool:
        """Queue a snapshot for upload; False (counted as dropped) when max_pending_writes are already queued."""
        with self._lock:
            if self._pending_writes >= self.config.max_pending_writes:
                self.counters["writes_dropped"] += 1
                return False
            self._pending_writes += 1
        try:
            self._writes.submit(self._write, snap, tag)
        except RuntimeError:  # shut down
            with self._lock:
                self._pending_writes -= 1
            return False
        return True

    def _write(self, snap: Snapshot, tag: str | None) -> None:
        try:
            self.write(snap, tag)
        finally:
            with self._lock:
                self._pending_writes -= 1

    def write(self, snap: Snapshot, tag: str | None = None) -> str | None:
        """Upload `snap` (unless an equal or fuller copy is there) and record `tag`; the name, or None on failure."""
        name = self.name_of(snap.block_keys)
        try:
            data = encode(snap, self.fingerprint)
            there = [o for o in self.backend.list(name) if o.name == name]
            if not there or there[0].size < len(data):
                self.backend.put(name, data)
                self.count("writes")
                self.count("written_bytes", len(data))
            self._touch(name)
            if tag:
                self.backend.put(f"{ROOT}tags/{tag_hash(tag)}/{name}", b"")
            return name
        except StoreUnavailable as e:
            self.count("write_failures")
            log.warning("writing prefix snapshot %s failed: %s", name, e)
            return None

    def pending_writes(self) -> int:
        with self._lock:
            return self._pending_writes

    ##### deletion and eviction #####

    def delete_tag(self, tag: str) -> int:
        """Delete every snapshot written by requests carrying `tag` (a deleted document's); how many."""
        prefix = f"{ROOT}tags/{tag_hash(tag)}/"
        gone = 0
        for marker in self.backend.list(prefix):
            name = marker.name[len(prefix):]
            if name.startswith(ROOT) and name.endswith(SUFFIX):
                self._delete_quietly(name)
                gone += 1
            self.backend.delete(marker.name)
        self.count("deleted_by_tag", gone)
        return gone

    def maintain(self, now: float | None = None) -> int:
        """One eviction pass under the store's lock object (one process at a time): snapshots unused for max_age_s
        go, then the least recently used until the total is under max_bytes; tag markers of gone snapshots go too.
        Returns how many snapshots were deleted (0 if another process holds the lock)."""
        if not self._acquire_lock():
            return 0
        try:
            return self._evict(time.time() if now is None else now)
        finally:
            try:
                self.backend.delete(LOCK)
            except StoreUnavailable:
                pass

    def _acquire_lock(self) -> bool:
        token = f"{self.owner} {time.time() + 3600:.0f}".encode()
        if self.backend.create_exclusive(LOCK, token):
            return True
        try:
            held = self.backend.get(LOCK).decode(errors="replace").split()
            expires = float(held[-1]) if held else 0.0
        except (NotFound, ValueError):
            expires = 0.0
        if expires < time.time():  # a holder that died: take over
            self.backend.delete(LOCK)
            return self.backend.create_exclusive(LOCK, token)
        return False

    def _evict(self, now: float) -> int:
        objs = self.backend.list(f"{ROOT}v")
        used = {o.name[: -len(USED)]: o.mtime for o in objs if o.name.endswith(USED)}
        snaps: list[ObjectInfo] = [o for o in objs if o.name.endswith(SUFFIX)]
        last = {o.name: max(o.mtime, used.get(o.name, 0.0)) for o in snaps}
        doomed = {o.name for o in snaps if now - last[o.name] > self.config.max_age_s}
        total = sum(o.size for o in snaps if o.name not in doomed)
        for o in sorted((o for o in snaps if o.name not in doomed), key=lambda o: last[o.name]):
            if total <= self.config.max_bytes:
                break
            doomed.add(o.name)
            total -= o.size
        for name in doomed:
            self._delete_quietly(name)
        alive = {o.name for o in snaps} - doomed
        for name in set(used) - alive - doomed:  # a .used marker whose snapshot is gone
            self.backend.delete(name + USED)
        for marker in self.backend.list(f"{ROOT}tags/"):
            rest = marker.name.split("/", 3)[-1] if marker.name.count("/") >= 3 else ""
            if rest not in alive:
                self.backend.delete(marker.name)
        self.count("evicted", len(doomed))
        if doomed:
            log.info("evicted %d prefix snapshots (%d bytes left)", len(doomed), total)
        return len(doomed)

    def _maintain_loop(self) -> None:
        while not self._stop.wait(self.config.maintain_every_s):
            try:
                self.maintain()
            except StoreUnavailable as e:
                log.warning("prefix store eviction pass failed: %s", e)
            except Exception:
                log.exception("prefix store eviction pass failed")
