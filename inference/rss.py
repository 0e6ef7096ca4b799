"""Peak resident memory of this process, for the benchmarks (Linux: VmHWM, reset with clear_refs)."""

import resource


def peak_rss_mib() -> float:
    """Peak RSS in MiB since the last reset_peak_rss (the lifetime peak where /proc is unavailable)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark so a phase's own peak is measured (Linux clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
