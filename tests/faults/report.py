"""The fault scenarios' results table (docs/fault-results.md): one row per scenario, written only when pytest runs
with `--fault-report` (tests never write into the repository otherwise)."""

from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "fault-results.md"

HEADER = """# Fault scenarios: results

Written by `pytest tests/faults --fault-report` (the tests in tests/faults/; docs/reliability.md says how each
scenario is checked). One row per scenario of the last run that wrote this file: jobs submitted, `done`, failed
with a clear error (a reason a person can act on), lost (never finished), duplicated (more than one result), and
the seconds from the fault's end until every job had finished.

| scenario | submitted | done | failed clearly | lost | duplicated | time to recover (s) |
|---|---|---|---|---|---|---|
"""


@dataclass(frozen=True)
class Row:
    scenario: str
    submitted: int
    done: int
    failed_clearly: int
    lost: int
    duplicated: int
    recover_s: float

    def line(self) -> str:
        return "| " + " | ".join(str(v) for v in asdict(self).values()) + " |"


def write(rows: list[Row], path: Path = REPORT) -> None:
    body = "\n".join(r.line() for r in sorted(rows, key=lambda r: r.scenario))
    path.write_text(HEADER + body + "\n")
