"""Read digest files into the store: expand paths, parse, classify, upsert.

Used by ``newsletter ingest`` and by the scheduler's publish job. A file that cannot be read as a
digest is reported and skipped; the good files still go in. Two guards keep damage out of the
store: a day listing more than ``[digests] max_papers_per_day`` papers is refused with a warning, and
a file that now lists half or less of what the store holds from it for a day (a truncated or
overwritten file) is held back with an error until it is ingested with ``accept_shrink``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter import __version__
from newsletter.categories import Classifier
from newsletter.config import Settings
from newsletter.drift import flag_short_days
from newsletter.errors import ConfigError, DigestError, UsageError
from newsletter.models import Day, FileHealth, ParseResult, ParseWarning, plural
from newsletter.parsing import FORMAT_REVISION, expand_paths, parse_bytes, parse_file

if TYPE_CHECKING:  # `newsletter parse` reads files only: the store (SQLAlchemy) is imported where it is used
    from newsletter.store import IngestCounts, PrunedSource, SourceRecord, Store


@dataclass
class ParsedFiles:
    days: list[Day] = field(default_factory=list)
    warnings: list[ParseWarning] = field(default_factory=list)
    errors: list[DigestError] = field(default_factory=list)
    health: list[FileHealth] = field(default_factory=list)
    refused: list[Day] = field(default_factory=list)
    """Days left out, their stored listings kept: over [digests] max_papers_per_day papers, or none of
    their papers readable."""


@dataclass(frozen=True)
class ShrunkListing:
    """A file that now lists far fewer papers for a day than the store holds from it."""

    file: str
    date: dt.date
    stored: int
    parsed: int


@dataclass
class IngestReport:
    counts: IngestCounts
    warnings: list[ParseWarning]
    errors: list[DigestError]
    files: list[FileHealth] = field(default_factory=list)
    """Per file: what its layout promised against what was found (see models.FileHealth)."""
    shrunk: list[ShrunkListing] = field(default_factory=list)
    pruned: list[PrunedSource] = field(default_factory=list)
    files_read: int = 0
    """The files given: a file can be in ``files`` and ``errors`` both (a listing held back as shrunk)."""

    def summary(self) -> dict[str, object]:
        """What `newsletter status` shows of the last ingest: totals, drift totals, the files that drifted."""
        drift: dict[str, int] = {}
        for health in self.files:
            for kind, count in health.drift.items():
                drift[kind] = drift.get(kind, 0) + count
        return {
            "files": self.files_read, "errors": len(self.errors), "warnings": len(self.warnings),
            "papers": {"new": self.counts.new, "updated": self.counts.updated, "unchanged": self.counts.unchanged},
            "drift": drift, "drifted_files": [f.file for f in self.files if f.drift],
        }

    def as_dict(self) -> dict[str, object]:
        per_file = Counter(w.file for w in self.warnings)
        return {
            "days": self.counts.days,
            "papers": {"new": self.counts.new, "updated": self.counts.updated, "unchanged": self.counts.unchanged},
            "warnings": [{"file": w.file, "line": w.line, "message": w.message} for w in self.warnings]
            + [{"file": e.path, "line": e.line, "message": e.message} for e in self.errors],
            "files": [
                {**f.as_dict(), "warnings": per_file[f.file]} for f in self.files
            ],
            "shrunk": [{"file": s.file, "date": s.date.isoformat(), "stored": s.stored, "parsed": s.parsed}
                       for s in self.shrunk],
            "pruned": [{"file": p.path, "dates": [d.isoformat() for d in p.dates], "papers": p.papers}
                       for p in self.pruned],
        }


def resolve_inputs(settings: Settings, paths: Iterable[str]) -> list[Path]:
    """The files to read: the paths given, else ``[digests] paths`` from the config."""
    given = list(paths)
    try:
        if given:
            return expand_paths(given)
        return expand_paths(settings.digest_paths())
    except DigestError as exc:
        if given:
            raise UsageError(exc.message, "check the path; quote globs so the shell does not expand them") from exc
        raise ConfigError(
            f"{settings.path}: digests.paths: {exc.message}",
            f"fix digests.paths in {settings.path.name}; relative paths start at the config file's folder",
        ) from exc


def parse_files(
    files: Iterable[Path], classifier: Classifier, on_file: Callable[[Path], None] | None = None
) -> ParsedFiles:
    parsed = ParsedFiles()
    for path in files:
        _parse_into(parsed, path, classifier)
        if on_file is not None:
            on_file(path)
    parsed.warnings.extend(flag_short_days(parsed.health, {}))
    return parsed


def _parse_into(
    parsed: ParsedFiles,
    path: Path,
    classifier: Classifier,
    data: bytes | None = None,
    max_papers: int | None = None,
    key: str | None = None,
) -> ParseResult | None:
    """Parse and classify one file into ``parsed``; return its result, with the classifier's warnings.

    Days with more than ``max_papers`` papers go to ``parsed.refused``, with a warning. ``key``, when
    given, names the file in its days (warnings keep the path).
    """
    try:
        result = parse_file(path) if data is None else parse_bytes(data, str(path))
    except DigestError as exc:
        parsed.errors.append(exc)
        return None
    if not result.days:
        parsed.warnings.extend(result.warnings)
        parsed.errors.append(_nothing_read_error(path, len(result.warnings)))
        return None
    refused: list[Day] = []
    if max_papers is not None:
        refused = [day for day in result.days if len(day.papers) > max_papers]
        result.days = [day for day in result.days if len(day.papers) <= max_papers]
        result.warnings.extend(_oversized_warning(day, max_papers) for day in refused)
    result.warnings.extend(classifier.assign(result.days))
    if result.health is not None:
        parsed.health.append(result.health)
    if key is not None:
        for day in [*result.days, *refused, *result.unreadable]:
            day.source = key
    parsed.days.extend(result.days)
    parsed.refused.extend([*refused, *result.unreadable])
    parsed.warnings.extend(result.warnings)
    return result


def _nothing_read_error(path: Path, warnings: int) -> DigestError:
    """A digest file that gave no day: every heading, table or paper in it was unreadable."""
    return DigestError(
        str(path), f"nothing in this file could be read (see its {plural(warnings, 'warning')}); the file is "
        "skipped, so a listing stored earlier from it stays",
        hint="fix what the warnings name, or remove the file from the digests",
    )


def _oversized_warning(day: Day, max_papers: int) -> ParseWarning:
    return ParseWarning(
        day.source, day.papers[0].line or 1,
        f"{day.date} lists {len(day.papers)} papers, more than [digests] max_papers_per_day ({max_papers}); "
        "this listing is not stored (one stored earlier stays). Check the file, or raise max_papers_per_day",
    )


# A listing shrinks when at most half of its papers are left and at least this many are gone: a
# corrected digest loses a row or two, a truncated or overwritten one most of them (10 down to 5).
SHRINK_MIN_LOSS = 2


def is_shrink(stored: int, parsed: int) -> bool:
    return 2 * parsed <= stored and stored - parsed >= SHRINK_MIN_LOSS


def compare_listings(parsed_files: ParsedFiles, store: Store, sources: Iterable[str]) -> tuple[
    list[ShrunkListing], list[Day]
]:
    """Each stored listing of these files against what they list now (refused days left alone).

    Returns the listings that shrank (see :func:`is_shrink`), and an empty Day for every stored
    listing that its file no longer lists (a day removed or re-dated), so that the store drops it.
    """
    parsed = {(day.date, day.source): len(day.papers) for day in parsed_files.days}
    refused = {(day.date, day.source) for day in parsed_files.refused}
    shrunk, vanished = [], []
    for (date, source), before in sorted(store.listing_sizes(sources).items()):
        if (date, source) in refused:
            continue
        now = parsed.get((date, source))
        if now is None:
            vanished.append(Day(date=date, papers=[], source=source))
        if is_shrink(before, now or 0):
            shrunk.append(ShrunkListing(source, date, before, now or 0))
    return shrunk, vanished


def _shrink_error(shrunk: ShrunkListing) -> DigestError:
    return DigestError(
        shrunk.file,
        f"lists {plural(shrunk.parsed, 'paper')} for {shrunk.date} where the store holds {shrunk.stored} from this "
        "file; the stored listing is kept and nothing of this file was ingested",
        hint="if the file was cut short or overwritten, restore it; if it is right, run `newsletter ingest "
        "--accept-shrink` to replace the stored listing",
    )


def source_key(path: Path, settings: Settings) -> str:
    """How the store names a digest file: relative to the config's folder when inside it, so that
    moving the whole project folder keeps every file's identity."""
    try:
        return path.relative_to(settings.base_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _fingerprint(data: bytes, context: bytes) -> str:
    """Changes when the file or ``context`` (what else shapes its stored papers) changes."""
    import hashlib  # here: loading OpenSSL is a cost `newsletter parse`, which stores nothing, need not pay

    return hashlib.sha256(context + data).hexdigest()


def _add_short_days(
    parsed: ParsedFiles, fresh: dict[str, FileHealth], known: dict[str, FileHealth], records: list[SourceRecord]
) -> list[SourceRecord]:
    """Warn about the files just parsed whose day is short against the stored ones; the warnings also go
    into their source records, so that an unchanged file reports them again."""
    short_days = flag_short_days(list(fresh.values()), {k: h for k, h in known.items() if k not in fresh})
    parsed.warnings.extend(short_days)
    return [
        dataclasses.replace(r, warnings=r.warnings + tuple(w for w in short_days if w.file == fresh[r.path].file))
        if r.path in fresh else r
        for r in records
    ]


def missing_sources(store: Store, settings: Settings) -> list[str]:
    """The files the store holds listings of that no longer exist, as the store names them."""
    base = settings.base_dir.resolve()
    return sorted(key for key in store.source_paths() if not (base / key).exists())


def ingest_files(
    settings: Settings,
    store: Store,
    files: Iterable[Path],
    on_file: Callable[[Path], None] | None = None,
    *,
    accept_shrink: bool = False,
    prune: bool = False,
) -> IngestReport:
    """Parse the files that changed since they were last ingested, and upsert what they hold.

    A file whose bytes (and the classifier settings) are as last time is skipped: its papers count
    as unchanged and its earlier warnings are reported again. A file whose listing of a day shrank
    is held back (see :func:`is_shrink`) unless ``accept_shrink``. ``prune``
    removes the listings of files that no longer exist.
    """
    from newsletter.store import SourceRecord

    classifier = Classifier(settings.categories)
    # The parser's version, the classifier settings and the papers-per-day limit also shape what a
    # file gives: a limit lowered or raised reads every file again, so that it holds for stored days too.
    context = json.dumps(
        [__version__, FORMAT_REVISION, dataclasses.asdict(settings.categories), settings.digests.max_papers_per_day],
        sort_keys=True,
    ).encode()
    known = store.known_sources()
    known_health = store.file_health()
    fresh: dict[str, FileHealth] = {}
    parsed = ParsedFiles()
    records: list[SourceRecord] = []
    unchanged_dates: set[dt.date] = set()
    unchanged_ids: set[str] = set()
    paths_of: dict[str, str] = {}
    files = list(files)
    for file in files:
        path = Path(file).resolve()
        key = source_key(path, settings)
        try:
            data: bytes | None = path.read_bytes()
        except OSError:
            data = None  # parse_file reports why it cannot be read
        fingerprint = _fingerprint(data, context) if data is not None else ""
        previous = known.get(key)
        if fingerprint and previous is not None and previous.fingerprint == fingerprint:
            unchanged_dates.update(previous.dates)
            unchanged_ids.update(previous.arxiv_ids)
            parsed.warnings.extend(previous.warnings)
            if key in known_health:
                parsed.health.append(dataclasses.replace(known_health[key], file=str(path)))
        else:
            result = _parse_into(parsed, path, classifier, data, settings.digests.max_papers_per_day, key)
            if result is not None:
                paths_of[key] = str(path)
                if result.health is not None:
                    fresh[key] = result.health
            if result is not None and fingerprint:
                records.append(SourceRecord(
                    key, fingerprint, tuple(sorted({d.date for d in result.days})),
                    tuple(dict.fromkeys(p.arxiv_id for d in result.days for p in d.papers)), tuple(result.warnings),
                ))
        if on_file is not None:
            on_file(path)
    records = _add_short_days(parsed, fresh, known_health, records)
    shrunk, vanished = compare_listings(parsed, store, paths_of)
    if shrunk and not accept_shrink:
        held = {s.file for s in shrunk}
        parsed.days = [d for d in parsed.days if d.source not in held]
        vanished = [d for d in vanished if d.source not in held]
        records = [r for r in records if r.path not in held]  # parsed again, and held again, next run
        shrunk = [dataclasses.replace(s, file=paths_of[s.file]) for s in shrunk]
        parsed.errors.extend(map(_shrink_error, shrunk))
    else:
        shrunk = []
    pruned = store.remove_sources(missing_sources(store, settings)) if prune else []
    counts = store.ingest(parsed.days + vanished, parsed_sources=records)
    counts.days = len(unchanged_dates | {d.date for d in parsed.days})
    counts.unchanged += len(unchanged_ids - {p.arxiv_id for d in parsed.days for p in d.papers})
    report = IngestReport(counts, parsed.warnings, parsed.errors, files=parsed.health, shrunk=shrunk, pruned=pruned,
                         files_read=len(files))
    store.record_health(fresh)
    store.record_ingest_run(report.summary())
    return report
