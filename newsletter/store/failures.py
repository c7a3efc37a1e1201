"""A database error that nothing expected, as the operator reads it: one line that names what failed
(the kind of error, the table) with the driver's own first line, and a hint saying what to check.

SQLAlchemy wraps each driver's exception in the DB-API's classes, which every backend shares: a
trigger's refusal is IntegrityError on SQLite and PostgreSQL alike, where the drivers call it
IntegrityError and IntegrityConstraintViolation. PostgreSQL's messages also carry DETAIL and
CONTEXT lines, and SQLAlchemy's the SQL; the first line of the driver's is what says what happened.
"""

from __future__ import annotations

import re

from sqlalchemy import exc as sa

from newsletter.errors import StoreError

_RERUN = "then run it again (a send continues where it stopped)"
_SCHEMA = "`newsletter db current` (is the schema this release's?)"
_SCHEMA_BEHIND = f"check {_SCHEMA}: `newsletter db upgrade` brings an older one there"

# (class, what failed, what to check), the first class that matches wins.
_KINDS: tuple[tuple[type[sa.SQLAlchemyError], str, str], ...] = (
    (sa.IntegrityError, "the database refused a change",
     f"check the constraints and triggers on that table, and {_SCHEMA}; {_RERUN}"),
    (sa.OperationalError, "the database could not carry out a statement",
     f"check that the database server is up and reachable; {_RERUN}"),  # on SQLite: _sqlite_hint
    (sa.DataError, "the database refused a value", f"check the value the message names; {_RERUN}"),
    (sa.ProgrammingError, "the database did not accept a statement", _SCHEMA_BEHIND),
    (sa.TimeoutError, "no store connection came free in time",
     f"more threads needed the database at once than its pool holds: lower [smtp] connections; {_RERUN}"),
    (sa.DBAPIError, "the database failed", f"check the database server's log; {_RERUN}"),
)

_TABLE = re.compile(r"\b(?:INTO|UPDATE|FROM)\s+\"?(\w+)", re.IGNORECASE)


def store_failure(error: BaseException) -> StoreError | None:
    """``error`` as a StoreError whose message is one line; None when it is not a database error."""
    if not isinstance(error, sa.SQLAlchemyError):
        return None
    said = first_line(str(getattr(error, "orig", None) or error))
    if not isinstance(error, sa.DBAPIError):
        said = said.split(" (Background on this error at:")[0]  # SQLAlchemy's own errors link its docs
    what, hint = next(((what, hint) for kind, what, hint in _KINDS if isinstance(error, kind)),
                      ("the store failed", f"check [store] url and that the database is reachable; {_RERUN}"))
    if isinstance(error, sa.OperationalError) and type(error.orig).__module__.startswith("sqlite3"):
        hint = _sqlite_hint(said)
    table = _TABLE.search(getattr(error, "statement", None) or "")
    where = f" (table {table.group(1)})" if table else ""
    return StoreError(f"{what}{where}: {said}", hint)


def _sqlite_hint(said: str) -> str:
    """What to check for SQLite's OperationalError, which it raises for a missing table (PostgreSQL's
    ProgrammingError) as well as for a locked or full file."""
    if said.startswith(("no such table", "no such column")):
        return _SCHEMA_BEHIND
    return f"check that the SQLite file's disk is not full and that no other program locks it; {_RERUN}"


def first_line(text: str) -> str:
    """The first line of a message that says something (drivers add DETAIL, CONTEXT and SQL lines below it)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())
