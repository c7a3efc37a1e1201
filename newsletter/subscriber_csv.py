"""The subscribers CSV format: `newsletter subscribers import` and `export`.

A header row, then one subscriber per row. ``email`` is required; ``name`` and ``categories`` are
the documented columns; ``keywords``, ``excluded``, ``status``, ``cadence`` (daily or weekly),
``weekday`` (mon ... sun) and ``authors`` (followed authors) are optional and written by ``export``
so that an export re-imports unchanged. List cells separate items by ``;``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO, cast

from newsletter.errors import InvalidSubscriberError, UsageError
from newsletter.models import Cadence, ParseWarning, Subscriber, SubscriberStatus, Weekday
from newsletter.store import Store
from newsletter.subscribers import LIST_SEPARATOR, email_key, validated

CSV_COLUMNS = ("email", "name", "categories", "keywords", "excluded", "status", "cadence", "weekday", "authors")
_COLUMN_FIELDS = {"name": "name", "categories": "categories", "keywords": "keywords", "excluded": "excluded_keywords",
                  "cadence": "cadence", "weekday": "weekday", "authors": "authors"}


def split_list(cell: str | None) -> list[str]:
    return [item.strip() for item in (cell or "").split(LIST_SEPARATOR) if item.strip()]


@dataclass
class CsvRows:
    """What a CSV file holds: the valid rows and, separately, what is wrong with the others."""

    columns: tuple[str, ...]
    rows: list[tuple[int, Subscriber]] = field(default_factory=list)
    """(line where the row starts, validated subscriber)."""
    errors: list[ParseWarning] = field(default_factory=list)
    """Rows refused, each with file, line and reason (the digest parser's record, reused)."""


@dataclass
class ImportReport:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    errors: list[ParseWarning] = field(default_factory=list)


def read_csv(path: Path, taxonomy: Sequence[str]) -> CsvRows:
    """Parse and validate every row; a bad row is reported with its line and never stops the rest.

    A file whose header is unusable raises UsageError (exit 2): no row of it can be trusted.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text", "save the file as CSV UTF-8") from None
    return parse_csv(io.StringIO(text, newline=""), str(path), taxonomy)


def parse_csv(stream: TextIO, source: str, taxonomy: Sequence[str]) -> CsvRows:
    reader = csv.reader(stream)
    columns = _read_header(reader, source)
    result = CsvRows(columns=columns)
    first_line: dict[str, int] = {}
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(ParseWarning(source, line, f"not valid CSV: {exc}"))
            break  # the reader cannot resynchronise after a broken quote
        start, line = line, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(columns):
            result.errors.append(ParseWarning(source, start, f"{len(cells)} cells, but the header has {len(columns)}"))
            continue
        try:
            sub = _subscriber_of(dict(zip(columns, cells, strict=True)), taxonomy)
        except InvalidSubscriberError as exc:
            result.errors.append(ParseWarning(source, start, str(exc).replace("\n  hint:", ";")))
            continue
        key = email_key(sub.email)
        if key in first_line:
            result.errors.append(ParseWarning(source, start, f"{sub.email} is already on line {first_line[key]}"))
            continue
        first_line[key] = start
        result.rows.append((start, sub))
    return result


def _read_header(reader: Iterator[list[str]], source: str) -> tuple[str, ...]:
    """The header's column names, lower-cased; UsageError when the header is missing or unusable."""
    try:
        header = next(reader)
    except StopIteration:
        raise UsageError(f"{source}:1: the file is empty",
                         f"the first line must be a header such as {','.join(CSV_COLUMNS[:3])}") from None
    except csv.Error as exc:
        raise UsageError(f"{source}:1: not valid CSV: {exc}") from None
    columns = tuple(c.strip().lower() for c in header)
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if "email" not in columns or unknown or len(set(columns)) != len(columns):
        problem = (f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}" if unknown
                   else "a column is repeated" if "email" in columns else "no 'email' column")
        raise UsageError(f"{source}:1: {problem} in the header",
                         f"the first line must be a header of: {', '.join(CSV_COLUMNS)} (email required)")
    return columns


def _subscriber_of(row: Mapping[str, str], taxonomy: Sequence[str]) -> Subscriber:
    """The row's subscriber, validated (InvalidSubscriberError); absent columns take the defaults."""
    return validated(Subscriber(
        email=row["email"],
        name=row.get("name", ""),
        categories=split_list(row.get("categories")),
        keywords=split_list(row.get("keywords")),
        excluded_keywords=split_list(row.get("excluded")),
        authors=split_list(row.get("authors")),
        # As read; validated() checks these in their turn, after the fields before them.
        cadence=cast(Cadence, row.get("cadence", "").strip() or "daily"),
        weekday=cast(Weekday, row.get("weekday", "").strip() or "mon"),
        status=cast(SubscriberStatus, row.get("status", "").strip() or "active"),
    ), taxonomy)


def import_csv(store: Store, path: Path, taxonomy: Sequence[str]) -> ImportReport:
    """Add or update every valid row of ``path`` in one transaction; report the bad ones.

    Columns the file lacks keep the stored values (a plain ``email,name,categories`` file does
    not wipe keywords set from the CLI). An import never changes a stored subscriber's status:
    that would resubscribe people who unsubscribed. ``status`` applies to new subscribers only.
    """
    parsed = read_csv(path, taxonomy)
    report = ImportReport(errors=list(parsed.errors))
    if not parsed.rows:
        return report
    stored = {email_key(s.email): s for s in store.subscribers(status=None)}
    merged = []
    for _line, sub in parsed.rows:
        before = stored.get(email_key(sub.email))
        if before is not None:
            sub = replace(sub, **{attr: getattr(before, attr) for column, attr in _COLUMN_FIELDS.items()
                                  if column not in parsed.columns})
        merged.append(sub)
    for (_saved, changed), sub in zip(store.upsert_subscribers(merged), merged, strict=True):
        if email_key(sub.email) not in stored:
            report.added += 1
        elif changed:
            report.changed += 1
        else:
            report.unchanged += 1
    return report


# --- CSV export ---------------------------------------------------------------------------------


def write_csv(subscribers: Iterable[Subscriber], out: TextIO) -> int:
    """Write every subscriber in the import format; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for sub in subscribers:
        writer.writerow([
            sub.email,
            sub.name,
            LIST_SEPARATOR.join(sub.categories),
            LIST_SEPARATOR.join(sub.keywords),
            LIST_SEPARATOR.join(sub.excluded_keywords),
            sub.status,
            sub.cadence,
            sub.weekday,
            LIST_SEPARATOR.join(sub.authors),
        ])
        count += 1
    return count
