"""The `wholedoc` command line. Each subcommand lives in api/cli/commands/<name>.py with `register(subparsers)`."""

import argparse
import importlib
import importlib.metadata
import pkgutil
import sys

from api.cli import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wholedoc", description="Summaries and Q&A over whole documents.")
    parser.add_argument("--version", action="version", version=f"wholedoc {_version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"api.cli.commands.{info.name}").register(sub)
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("wholedoc")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    from pipeline.errors import SettingsError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"wholedoc: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
