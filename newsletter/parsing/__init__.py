"""Read daily digests into Days of Papers, whatever format they come in.

Formats (detected from the content by :func:`detect_format`): the Markdown table (``table.py``), the
"paper cards" page as text (``cards.py``) and as HTML (``cards_html.py``). A bad row or card becomes a
ParseWarning naming file and line and the rest still parses; only a file that cannot be read as a
digest at all raises DigestError. Nothing else leaves this module: a fault inside a parser becomes
that file's DigestError, so one odd file never stops the others.
"""

from __future__ import annotations

import codecs
import glob
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from newsletter.errors import DigestError
from newsletter.models import DigestFormat, FileHealth, ParseResult, ParseWarning
from newsletter.parsing.detect import detect_format

__all__ = ["FORMAT_REVISION", "detect_format", "expand_paths", "parse_bytes", "parse_file", "parse_text", "run_parser"]

FORMAT_REVISION = 4
"""Bump when a parser reads the same file differently, so that ingest parses unchanged files again."""
DIGEST_SUFFIXES = frozenset({".md", ".txt", ".html", ".htm"})
NOT_A_DIGEST_HINT = "expected `## Papers for YYYY-MM-DD` followed by a Markdown table, or a paper-cards page"
SUFFIX_LIST = ", ".join(sorted("*" + suffix for suffix in DIGEST_SUFFIXES))
# UTF-32 first: its little-endian mark starts with UTF-16's.
UNICODE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# A character that only a valid multi-byte UTF-8 sequence decodes to (U+FFFD stands for bad bytes).
UTF8_MULTIBYTE = re.compile("[^\x00-\x7f\ufffd]")
SAVE_AS_UTF8 = "Save the file as UTF-8 to be sure of its text"


def parse_text(text: str, source: str) -> ParseResult:
    """Parse one digest's text; ``source`` names it in warnings and errors."""
    if not text or text.isspace():
        raise DigestError(source, "empty file: there is no digest in it", hint=NOT_A_DIGEST_HINT)
    digest_format = detect_format(text)
    if digest_format is None:
        raise DigestError(
            source, "not a digest: neither a `## Papers for` heading nor a paper-cards page", hint=NOT_A_DIGEST_HINT
        )
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    result = run_parser(digest_format, text, source)
    if result.health is None:  # a parser that counts no blocks or drift of its own
        papers = sum(len(day.papers) for day in result.days)
        result.health = FileHealth(source, digest_format, blocks=papers, papers=papers)
        result.health.count(result.warnings)
    result.health.size = len(text)
    return result


def run_parser(digest_format: DigestFormat, text: str, source: str) -> ParseResult:
    """Run one format's parser; any failure inside it becomes a DigestError for ``source``."""
    parser = parser_of(digest_format)
    try:
        return parser(text, source)
    except DigestError:
        raise
    except Exception as exc:  # a parser's own fault must stay with the file that caused it
        line = getattr(exc, "lineno", None)
        raise DigestError(
            source,
            f"the {digest_format} parser failed on this file ({type(exc).__name__}: {str(exc)[:200]}); "
            "nothing of it was read",
            hint="the other files are read as usual. Look for unusual markup in this file, fix or remove it and "
            "run the command again, and report the file to the newsletter maintainers",
            line=line if isinstance(line, int) and line > 0 else None,
        ) from exc


def parser_of(digest_format: DigestFormat) -> Callable[[str, str], ParseResult]:
    """The format's parser, imported when a file of that format first comes: a run over tables
    does not pay for compiling the cards parsers' regular expressions."""
    if digest_format == "table":
        from newsletter.parsing.table import parse_table

        return parse_table
    if digest_format == "cards-text":
        from newsletter.parsing.cards import parse_cards_text

        return parse_cards_text
    from newsletter.parsing.cards_html import parse_cards_html

    return parse_cards_html


def parse_file(path: str | Path) -> ParseResult:
    """Parse a digest file in any encoding :func:`decode` reads."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DigestError(str(path), "is a folder, not a digest file", hint="name a digest file or a glob") from None
    except OSError as exc:
        raise DigestError(
            str(path), f"cannot be read: {exc.strerror or exc}", hint="check that the file exists and is readable"
        ) from None
    return parse_bytes(data, str(path))


def parse_bytes(data: bytes, source: str) -> ParseResult:
    """Parse a digest read as bytes; how they were decoded, when not as UTF-8, comes first in the warnings."""
    text, warnings = decode(data, source)
    result = parse_text(text, source)
    result.warnings[:0] = warnings
    return result


def decode(data: bytes, source: str) -> tuple[str, list[ParseWarning]]:
    """A digest file's text: UTF-8 (with or without a byte-order mark), or UTF-16/32 with one.

    Other bytes are never turned into U+FFFD silently: a file with no UTF-8 byte-order mark and no
    valid multi-byte UTF-8 in it was written in a legacy encoding and is read as Windows-1252 (Latin-1
    with curly quotes and dashes); any other is UTF-8 with damaged bytes, which are replaced. Either
    way with a warning naming the file and the line of the first bad byte.
    """
    for bom, codec in UNICODE_BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec), []
            except UnicodeDecodeError as exc:
                raise DigestError(
                    source, f"starts with a {codec.upper()} byte-order mark but is not {codec.upper()} "
                    f"(bad bytes at offset {exc.start})", hint=SAVE_AS_UTF8,
                ) from None
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = f"byte 0x{data[exc.start]:02X}"
    text = data.decode("utf-8-sig", errors="replace")
    if data.startswith(codecs.BOM_UTF8) or UTF8_MULTIBYTE.search(text):
        message = f"not valid UTF-8 ({byte}); the invalid bytes were replaced by U+FFFD. {SAVE_AS_UTF8}"
        return text, [ParseWarning(source, line, message)]
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:  # the five bytes Windows-1252 leaves undefined
        text = data.decode("latin-1")
    message = f"not UTF-8 ({byte}); read as Windows-1252 (Latin-1), check its accented letters. {SAVE_AS_UTF8}"
    return text, [ParseWarning(source, line, message)]


def digest_files_in(folder: Path) -> list[Path]:
    """Digest files anywhere under ``folder``, skipping hidden files and folders (.git, .venv)."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in DIGEST_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def expand_paths(patterns: Iterable[str]) -> list[Path]:
    """Digest files named by files, folders (searched recursively) or globs; sorted, each once.

    A pattern that matches no digest file raises DigestError naming the pattern.
    """
    found: dict[Path, Path] = {}
    for pattern in patterns:
        if not pattern.strip():
            raise DigestError(repr(pattern), "empty path", hint="name a digest file, a folder or a glob")
        expanded = os.path.expanduser(pattern)
        candidate = Path(expanded)
        if candidate.is_file():
            matches = [candidate]
        elif candidate.is_dir():
            matches = digest_files_in(candidate)
        elif glob.has_magic(expanded):
            matches = []
            for hit in sorted(glob.glob(expanded, recursive=True)):
                hit_path = Path(hit)
                matches.extend(digest_files_in(hit_path) if hit_path.is_dir() else [hit_path])
        else:
            raise DigestError(pattern, "no such file or folder", hint="check the path and its spelling")
        if not matches:
            raise DigestError(
                pattern,
                "matches no digest file",
                hint=f"folders are searched for {SUFFIX_LIST} files; check the pattern",
            )
        for match in matches:
            found.setdefault(match.resolve(), match)
    return sorted(found.values())
