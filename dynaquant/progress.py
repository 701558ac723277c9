"""A plain-text progress bar for batch polling: redrawn in place on a terminal, one line per change otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

SHOWN = ("succeeded", "failed", "cancelled", "running", "queued")


class ProgressBar:
    """Shows how many of a batch's jobs have ended, with the count in each status."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = ""

    def line(self, counts: Mapping[str, int]) -> str:
        """The bar as text for these counts by status."""
        done = sum(n for status, n in counts.items() if status not in ("queued", "running"))
        filled = round(self.width * min(done, self.total) / self.total)
        detail = ", ".join(f"{counts[s]} {s}" for s in SHOWN if counts.get(s))
        elapsed = time.monotonic() - self.started
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} done ({detail}) {elapsed:5.1f} s"

    def update(self, counts: Mapping[str, int]) -> None:
        """Redraw the bar (on a terminal) or print it when the counts changed (in a log)."""
        text = self.line(counts)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
        elif text.split(")")[0] != self._last.split(")")[0]:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = text

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()
