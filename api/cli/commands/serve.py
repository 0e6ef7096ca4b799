"""`wholedoc serve [--host H] [--port P]`: the api, a worker, beat and (unless WHOLEDOC_INFERENCE_URL is set)
an inference server, as processes on this machine; Ctrl-C stops them all cleanly."""

import signal
import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run wholedoc on this machine (api, worker, beat, inference)")
    p.add_argument("--host", default="127.0.0.1", help="address the API listens on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port of the API (default: %(default)s)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from api.cli.stack import Stack, StackError

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    stack = Stack(host=args.host, port=args.port, say=say)
    try:
        stack.start()
    except StackError as exc:
        say(f"error: {exc}")
        return 1
    say(f"wholedoc is serving on {stack.url} (API docs: {stack.url}/docs); logs in {stack.home / 'logs'}")
    say(f"web page: {stack.url}/ (sign in there with an API key)")
    say("make a key with: wholedoc admin create-tenant NAME && wholedoc admin create-key NAME")
    code = 0
    try:
        while not stop:
            dead = stack.dead()
            if dead:
                say(f"error: {dead} exited; stopping (see {stack.home / 'logs' / f'{dead}.log'})")
                code = 1
                break
            time.sleep(0.5)
    finally:
        say("stopping…")
        stack.stop()
    return code
