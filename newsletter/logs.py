"""Log lines for the long-running commands (`serve`, `schedule`, `publish`): one line per event, each
with its time, so that journald, `docker logs` and grep see every event whole."""

from __future__ import annotations

import logging
import traceback
from types import TracebackType

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class OneLineFormatter(logging.Formatter):
    """A record's message and its exception on one line: an exception as its type, its message and
    the line that raised it, not a traceback spread over lines that other events interleave with."""

    def formatException(self, ei: ExcInfo) -> str:
        kind, error, trace = ei
        if kind is None:
            return ""
        where = ""
        frames = traceback.extract_tb(trace)
        if frames:
            last = frames[-1]
            where = f" (at {last.filename}:{last.lineno} in {last.name})"
        return f"{kind.__name__}: {error}{where}"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return " | ".join(part.strip() for part in text.splitlines() if part.strip())


def configure_logging(level: str = "INFO") -> None:
    """Timestamped single lines on stderr, for every logger (waitress, Flask, APScheduler, ours)."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(handlers=[handler], level=level.upper(), force=True)
    # Alembic says at INFO which dialect it uses and each revision it runs, on every command that opens
    # the store: noise in an operator's log. Its warnings stay, and log_level DEBUG shows it all.
    logging.getLogger("alembic").setLevel(logging.NOTSET if level.upper() == "DEBUG" else logging.WARNING)
