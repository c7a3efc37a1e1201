"""Read digest files into the store: expand paths, parse, classify, upsert.

Used by ``newsletter ingest`` and by the scheduler's publish job. A file that cannot be read as a
digest is reported and skipped; the good files still go in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.categories import Classifier
from newsletter.config import Settings
from newsletter.errors import ConfigError, DigestError, UsageError
from newsletter.models import Day, ParseWarning
from newsletter.parsing import expand_paths, parse_file
from newsletter.store import IngestCounts, Store


@dataclass
class ParsedFiles:
    days: list[Day] = field(default_factory=list)
    warnings: list[ParseWarning] = field(default_factory=list)
    errors: list[DigestError] = field(default_factory=list)


@dataclass
class IngestReport:
    counts: IngestCounts
    warnings: list[ParseWarning]
    errors: list[DigestError]

    def as_dict(self) -> dict[str, object]:
        return {
            "days": self.counts.days,
            "papers": {"new": self.counts.new, "updated": self.counts.updated, "unchanged": self.counts.unchanged},
            "warnings": [{"file": w.file, "line": w.line, "message": w.message} for w in self.warnings]
            + [{"file": e.path, "line": e.line, "message": e.message} for e in self.errors],
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
        try:
            result = parse_file(path)
        except DigestError as exc:
            parsed.errors.append(exc)
        else:
            classifier.assign(result.days)
            parsed.days.extend(result.days)
            parsed.warnings.extend(result.warnings)
        if on_file is not None:
            on_file(path)
    return parsed


def ingest_files(
    settings: Settings, store: Store, files: Iterable[Path], on_file: Callable[[Path], None] | None = None
) -> IngestReport:
    # Absolute paths, so that a file named differently on two runs is still one source.
    parsed = parse_files((Path(f).resolve() for f in files), Classifier(settings.categories), on_file)
    counts = store.ingest(parsed.days)
    return IngestReport(counts, parsed.warnings, parsed.errors)
