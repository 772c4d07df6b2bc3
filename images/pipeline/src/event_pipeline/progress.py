"""A waiting process's report on stderr: one line when it starts, on a terminal one progress
line rewritten in place, one line at the end."""

from __future__ import annotations

import sys


class StatusLine:
    """Lines on stderr; ``progress`` rewrites one line in place on a terminal and is silent
    elsewhere (a pod's log gets the first and last lines only)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._progress = False

    def line(self, message: str) -> None:
        self.done()
        print(message, file=sys.stderr, flush=True)

    def progress(self, message: str) -> None:
        if self.tty:
            sys.stderr.write(f"\r\x1b[K{message}")
            sys.stderr.flush()
            self._progress = True

    def done(self) -> None:
        if self._progress:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._progress = False
