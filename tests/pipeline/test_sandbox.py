"""run_isolated: results come back; timeouts, memory limits and crashes become typed errors naming the unit."""

import os
import signal
import time

import pytest

from pipeline.errors import EncryptedPdf, ExtractionCrashed, ExtractionResourceLimit, ExtractionTimeout
from pipeline.sandbox import run_isolated

GIB = 2**30


def _power(x: int, *, exponent: int) -> tuple[int, int]:
    return x**exponent, os.getpid()


def _refuse() -> None:
    raise EncryptedPdf("a password is needed")


def _slow_unit(progress, *, stuck_at: int, seconds: float) -> str:
    for unit in range(1, 6):
        progress(unit)
        if unit == stuck_at:
            time.sleep(seconds)
    return "finished"


def _allocate(progress, *, num_bytes: int) -> int:
    progress("big.bin")
    return len(bytearray(num_bytes))


def _die(progress) -> None:
    progress("src/crash.py")
    os.kill(os.getpid(), signal.SIGKILL)


def test_result_comes_back_from_another_process():
    value, pid = run_isolated(_power, 7, exponent=3, timeout_s=30, memory_bytes=GIB)
    assert value == 343
    assert pid != os.getpid()


def test_errors_of_the_function_keep_their_type_and_message():
    with pytest.raises(EncryptedPdf, match="a password is needed"):
        run_isolated(_refuse, timeout_s=30, memory_bytes=GIB)


def test_total_timeout_kills_the_child_and_names_the_unit():
    start = time.monotonic()
    with pytest.raises(ExtractionTimeout, match="at page 3") as err:
        run_isolated(_slow_unit, stuck_at=3, seconds=60, timeout_s=1.5, memory_bytes=GIB, with_progress=True)
    assert err.value.page == 3
    # the bound is the behaviour: killed at its 1.5 s timeout, not after the child's 60 s (generous under load)
    assert time.monotonic() - start < 30


def test_unit_timeout_fires_before_the_total_one():
    with pytest.raises(ExtractionTimeout, match="one unit took more than 0.5 s at page 2") as err:
        run_isolated(_slow_unit, stuck_at=2, seconds=60, timeout_s=60, unit_timeout_s=0.5, memory_bytes=GIB,
                     with_progress=True)
    assert err.value.where == 2


def test_units_within_their_limit_finish():
    assert run_isolated(_slow_unit, stuck_at=2, seconds=0.1, timeout_s=30, unit_timeout_s=5, memory_bytes=GIB,
                        with_progress=True) == "finished"


def test_memory_limit_is_a_resource_error_naming_the_unit():
    with pytest.raises(ExtractionResourceLimit, match="1.00 GiB memory limit at big.bin") as err:
        run_isolated(_allocate, num_bytes=2 * GIB, timeout_s=30, memory_bytes=GIB, with_progress=True)
    assert err.value.where == "big.bin"
    assert err.value.page is None


def test_a_killed_child_is_reported_as_a_crash_at_its_unit():
    with pytest.raises(ExtractionCrashed, match="SIGKILL.*at src/crash.py"):
        run_isolated(_die, timeout_s=30, memory_bytes=GIB, with_progress=True)
