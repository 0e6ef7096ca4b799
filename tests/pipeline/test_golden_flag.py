"""The golden-file regenerate flag (WHOLEDOC_REGEN_GOLDEN, shared by the PDF and codebase goldens) is off in CI."""

import os

from tests.conftest import IN_CI


def test_regenerate_flag_is_off_in_ci():
    """With the flag on, golden tests rewrite their expected files and pass whatever the code does."""
    if IN_CI:
        assert os.environ.get("WHOLEDOC_REGEN_GOLDEN") in (None, "", "0"), "WHOLEDOC_REGEN_GOLDEN must be unset in CI"
    else:
        assert os.environ.get("WHOLEDOC_REGEN_GOLDEN") != "1" or not IN_CI
