"""Text progress bars on stderr for the command line (upload, extraction, prefill, generation)."""

import sys
import time


class Bar:
    """`label [#####-----]  50%  done/total unit`, redrawn in place on a terminal, printed once when finished."""

    def __init__(self, label: str, total: float | None = None, unit: str = "", stream=None, width: int = 30):
        self.label, self.total, self.unit, self.width = label, total, unit, width
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.done, self.closed, self.last_draw = 0.0, False, 0.0

    def update(self, done: float, total: float | None = None) -> None:
        self.done, self.total = done, total or self.total
        now = time.monotonic()
        if self.tty and now - self.last_draw > 0.05:
            self.last_draw = now
            self.stream.write("\r" + self.render())
            self.stream.flush()

    def render(self) -> str:
        if not self.total:
            return f"{self.label:12s} {self.done:,.0f} {self.unit}".rstrip()
        frac = min(max(self.done / self.total, 0.0), 1.0)
        fill = round(frac * self.width)
        return (f"{self.label:12s} [{'#' * fill}{'-' * (self.width - fill)}] {frac:4.0%}  "
                f"{self.done:,.0f}/{self.total:,.0f} {self.unit}").rstrip()

    def close(self, note: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        self.stream.write(("\r" if self.tty else "") + self.render() + (f"  {note}" if note else "") + "\n")
        self.stream.flush()
