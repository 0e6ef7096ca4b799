"""`wholedoc config [--json]`: the effective settings of the API, the workers and the command line, as this
environment gives them (each `WHOLEDOC_*` variable once, with who reads it); secrets and URL passwords masked.
A bad value is reported like a process would at start (exit 2)."""

import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("config", help="print the effective settings (secrets masked) and check them",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--json", action="store_true", help="one JSON object: variable -> {value, source, used_by}")
    p.set_defaults(func=_run)


def _classes() -> dict:
    from api.cli.settings import CliSettings
    from api.settings import ApiSettings
    from workers.app import WorkerSettings

    return {"api": ApiSettings, "worker": WorkerSettings, "cli": CliSettings}


def effective() -> dict[str, dict]:
    """Variable → {value (masked), source: environment | default, used_by: [services]}; SettingsError if any is bad."""
    from pipeline.errors import SettingsError

    out: dict[str, dict] = {}
    problems = []
    for service, cls in _classes().items():
        try:
            values = cls.load().effective()
        except SettingsError as exc:
            problems += [line for line in str(exc).splitlines()[1:] if line not in problems]
            continue
        for var, (value, from_env) in values.items():
            entry = out.setdefault(var, {"value": value, "source": "environment" if from_env else "default",
                                         "used_by": []})
            entry["used_by"].append(service)
    if problems:
        raise SettingsError(f"invalid settings ({len(problems)}):\n" + "\n".join(problems))
    return dict(sorted(out.items()))


def _run(args) -> int:
    table = effective()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    width = max(len(v) for v in table)
    print("# the effective settings (secrets and URL passwords masked); source, then who reads each", file=sys.stderr)
    for var, e in table.items():
        value = "(unset)" if e["value"] is None else e["value"] or '""'
        print(f"{var:<{width}}  {value}  [{e['source']}; {', '.join(e['used_by'])}]")
    return 0
