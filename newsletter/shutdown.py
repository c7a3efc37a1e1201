"""Graceful shutdown on SIGTERM and SIGINT, the same for `newsletter serve`, `schedule` and `publish`.

``StopSignals`` catches both signals while its block runs and puts the previous handlers back after,
so that a second signal during the clean-up acts as it did before. SIGINT is caught explicitly, even
when the process inherited it as ignored (a shell script's `serve &`), for which Python installs no
KeyboardInterrupt: SIGINT always stops the program, like SIGTERM. A handler only records the signal
(or raises, see ``raise_exit``): taking a lock there could deadlock with the interrupted main thread.
"""

from __future__ import annotations

import signal
import time
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_SECONDS = 0.2


class StopSignals:
    """``with StopSignals() as stop:``, then ``stop.received`` (the signal number, or None) or ``stop.wait()``.

    ``raise_exit``: also raise SystemExit(0) in the main thread at the signal, for a server loop
    (waitress) that stops on it as on Ctrl+C, finishing the requests in progress.
    """

    def __init__(self, raise_exit: bool = False) -> None:
        self.raise_exit = raise_exit
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        if self.raise_exit:
            raise SystemExit(0)

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until a stop signal comes (its number), or ``timeout`` seconds have passed (None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.received is None and (deadline is None or time.monotonic() < deadline):
            time.sleep(POLL_SECONDS)
        return self.received

    def __enter__(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
