"""A long prefix is stored before memory evicts it (docs/prefix-store.md#how-the-engine-uses-it): while the upload
queue is full (the bucket stalls behind a paused loopback proxy in front of moto's S3 server), a finished prefill's
snapshot is deferred by reference; when its blocks are about to be reused it is copied out, and once the store
answers again it is uploaded and restores with a cold run's tokens."""

import socket
import threading

import pytest

from inference.engine.layout import CacheLayout
from tests.helpers.wait import wait_until
from tests.inference.engine.engine_helpers import random_ids, run_one
from tests.inference.engine.test_snapshot_restore import GREEDY, cold, engine_with, settle, store_on

pytestmark = [pytest.mark.services, pytest.mark.slow]


class PausableProxy:
    """TCP on loopback to `upstream`; new connections wait (unanswered) until `resume()`."""

    def __init__(self, upstream: str):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.open = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def resume(self) -> None:
        self.open.set()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self.open.wait()
        up = socket.create_connection(self.upstream)
        self.conns.append(up)
        threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()
        self._pump(conn, up)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_deferred_snapshot_is_copied_out_before_eviction_and_uploaded_later(model, moto_endpoint):
    proxy = PausableProxy(moto_endpoint)
    s3 = dict(access_key="testing", secret_key="testing", min_tokens=256)
    store = store_on(f"s3://deferred?endpoint=127.0.0.1:{proxy.port}&secure=0", model, restore_timeout_s=1.0,
                     io_timeout_s=60.0, max_pending_writes=1, **s3)
    layout = CacheLayout(model.args, "float32")
    # 2 running + 2 checkpoint window slots and 24 history blocks: the third document evicts the second's blocks
    eng = engine_with(model, store, max_num_seqs=2, num_checkpoints=2,
                      cache_bytes=4 * layout.window_block_bytes + 24 * layout.history_block_bytes)
    assert eng.blocks.num_blocks == 24
    a, b, c = random_ids(300, 31), random_ids(700, 32), random_ids(2950, 33)
    try:
        run_one(eng, "a", a, GREEDY)  # its upload hangs behind the paused proxy: the queue (1) is full
        assert store.pending_writes() == 1
        run_one(eng, "b", b, GREEDY)
        assert list(eng.snapshots.deferred) and not eng.snapshots.copied  # by reference: its blocks are in memory
        b_last, (b_keys, _) = next(iter(eng.snapshots.deferred.items()))
        run_one(eng, "c", c, GREEDY)  # needs all 24 blocks: a's and b's go
        assert not any(k in eng.blocks.by_key for k in b_keys), "b's blocks were not evicted"
        assert list(eng.snapshots.copied) == [b_last]  # copied out before they went (c's own waits by reference)
        assert b_last not in eng.snapshots.deferred
        proxy.resume()

        def uploaded() -> bool:
            eng.step()  # the engine hands deferred snapshots to the store between steps
            return store.pending_writes() == 0 and not eng.snapshots.copied and not eng.snapshots.deferred

        wait_until(uploaded, 60, "the deferred snapshot uploaded")
        settle(store)
        assert store.stats()["writes"] == 3 and not store.stats().get("writes_dropped")  # a, b (copied), c
    finally:
        proxy.close()
        store.close()
    fresh = engine_with(model, store_on(f"s3://deferred?endpoint={moto_endpoint}&secure=0", model, **s3))
    question = b + random_ids(20, 34)
    tokens, out = run_one(fresh, "b2", question, GREEDY)
    assert tokens == cold(model, question)
    assert out.cached_tokens >= 128 and fresh.stats().restored_tokens == out.cached_tokens
