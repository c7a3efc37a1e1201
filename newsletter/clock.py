"""The one place for "now" and for timestamps read back from the store.

Every datetime the project stores is UTC. PostgreSQL returns it with its offset; SQLite drops the
offset and returns a naive value, which ``as_utc`` gives back its UTC zone so that comparisons with
``utc_now()`` work on both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]
"""What code that needs "now" takes, so that tests can pass a fake one."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime; a naive one (from SQLite) is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
