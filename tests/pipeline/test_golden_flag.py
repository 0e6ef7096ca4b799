"""The golden-file regenerate flag (WHOLEDOC_REGEN_GOLDEN, shared by the PDF and codebase goldens) must be off.

With the flag on, golden tests rewrite their expected files and pass whatever the code does; so a run with it
(CI above all: CI=true) fails here. Regenerate on purpose with e.g.
`WHOLEDOC_REGEN_GOLDEN=1 .venv/bin/python -m pytest -q tests/pipeline/test_pdf.py`, then review the diff.
"""

import os

from tests.helpers.services import IN_CI


def test_regenerate_flag_is_off():
    flag = os.environ.get("WHOLEDOC_REGEN_GOLDEN", "")
    where = "in CI (CI=true)" if IN_CI else "in this run"
    assert flag in ("", "0"), f"WHOLEDOC_REGEN_GOLDEN={flag!r} is set {where}: golden files would be rewritten"
