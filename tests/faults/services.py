"""Private PostgreSQL, Redis and a blob-store cut-off for the fault scenarios: each on a free loopback port, owned by
the test, so it can be stopped, restarted or wiped without touching the machine's shared services.

PostgreSQL refuses to run as root: under root, `initdb` and `pg_ctl` run as the `postgres` user (runuser)."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.helpers.services import free_port, need_service
from tests.helpers.wait import wait_until


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder on a free port (trust auth, fsync off); `url` is its `postgres`
    database. stop(mode) / start() / restart() act on the real server process."""

    def __init__(self):
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            need_service("initdb/pg_ctl", "the fault scenarios restart a private PostgreSQL")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                need_service("a postgres user", "PostgreSQL refuses to run as root")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="wd-faults-pg-"))
        self.data, self.log = self.root / "data", self.root / "pg.log"
        if self.as_user:
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self._run([self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self.as_user + cmd, capture_output=True, text=True, check=check, cwd=self.root)

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start"])
        wait_until(self.accepting, 30, "private PostgreSQL accepting connections", 0.1)

    def stop(self, mode: str = "fast") -> None:
        """`fast` (clients disconnected, clean shutdown) or `immediate` (like a crash: recovery on start)."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], check=False)

    def accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2) as c:
                c.execute("select 1")
            return True
        except psycopg.Error:
            return False

    def new_database(self, name: str) -> str:
        """A new database `name`, migrated to head: its URL."""
        import psycopg

        from pipeline.records.db import upgrade

        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'create database "{name}"')
        url = self.url.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        return url

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server on a fixed free port that can be killed (SIGKILL: everything in it is lost, it was started
    without persistence) and started again empty, or restarted after a SAVE (its data kept)."""

    def __init__(self, folder: Path):
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            need_service("redis-server", "the Celery broker in production and CI")
        self.folder, self.port, self.proc = folder, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder), "--dbfilename", "dump.rdb",
                                      "--maxmemory-policy", "noeviction"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        def up():
            try:
                return self.client().ping()
            except redis.ConnectionError:
                return False

        wait_until(up, 15, "private redis-server answering", 0.05)

    def kill(self) -> None:
        """SIGKILL: queued messages and unacked deliveries are gone."""
        self.proc.kill()
        self.proc.wait(10)

    def restart(self) -> None:
        """SAVE, then SIGKILL and start again on the same port from the dump: a restart that keeps the data."""
        self.client().save()
        self.kill()
        self.start()

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class CutOff:
    """A TCP forwarder on loopback in front of a server (moto's S3): `down()` drops every connection and refuses new
    ones (the port stays reserved by us, nothing listens); `up()` accepts and forwards again. The server behind it
    keeps its state, as an S3 endpoint that goes unreachable for a while does."""

    def __init__(self, target: str):
        host, port = target.rsplit(":", 1)
        self.target, self.port = (host, int(port)), free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self) -> None:
        s, self._listener = self._listener, None
        if s is not None:
            s.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.down()


def seconds_since(t0: float) -> float:
    return round(time.monotonic() - t0, 1)
