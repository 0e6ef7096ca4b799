"""The deployment a command talks to: the one WHOLEDOC_API_URL names, or an embedded one started for the command
(api/cli/stack.py) and stopped after it, watched so that a process that dies stops the command's waiting."""

import _thread
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from api.cli.credentials import local_key
from api.cli.output import err
from api.cli.remote import ApiClient
from api.cli.settings import CliSettings


class StackDied(RuntimeError):
    """A process of the embedded deployment exited while the command was using it."""


@contextmanager
def connect() -> Iterator[ApiClient]:
    """WHOLEDOC_API_URL + WHOLEDOC_API_KEY → that deployment; nothing configured → an embedded one, stopped after."""
    settings = CliSettings.load()
    if settings.api_url:
        if not settings.api_key:
            raise SystemExit("WHOLEDOC_API_URL is set but WHOLEDOC_API_KEY is not (wholedoc admin create-key T)")
        client = ApiClient(settings.api_url, settings.api_key.get_secret_value())
        try:
            yield client
        finally:
            client.close()
        return
    from api.cli.stack import Stack

    home = settings.home
    err(f"starting an embedded wholedoc in {home} (set WHOLEDOC_API_URL to use a deployment)…")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the stack below is always stopped
    with Stack(settings=settings, say=err) as stack:
        client = ApiClient(stack.url, local_key(home, settings.database_url))
        died: list[str] = []

        def watch() -> None:  # a process of the stack died: stop waiting on it
            while stack.procs and not died:
                name = stack.dead()
                if name:
                    died.append(name)
                    _thread.interrupt_main()
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()
        try:
            yield client
        except KeyboardInterrupt:
            if died:
                log = home / "logs" / f"{died[0]}.log"
                raise StackDied(f"the embedded {died[0]} process exited; see {log}") from None
            raise
        finally:
            died.append("")  # stops the watcher
            client.close()
