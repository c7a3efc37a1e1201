"""The Markdown table parser, format detection, file and path handling, on the real corpus and on
hand-written variants."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from newsletter.errors import DigestError
from newsletter.models import Day, ParseResult, summary_of
from newsletter.parsing import detect_format, expand_paths, parse_file, parse_text

LINKED_ID = re.compile(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})")
SEED_DATES = ["2025-04-14", "2025-04-14", "2025-05-13", "2025-02-10", "2025-03-04"]


def only_day(result: ParseResult) -> Day:
    assert len(result.days) == 1, result.days
    return result.days[0]


def row(title: str, authors: str, summary: str, arxiv_id: str) -> str:
    return (
        f"| {title} (Read more on [arXiv](https://arxiv.org/abs/{arxiv_id}) or "
        f"[HuggingFace](https://huggingface.co/papers/{arxiv_id}))| {authors} | {summary} |"
    )


def digest(date: str, *rows: str, header: str = "| Title | Authors | Summary |") -> str:
    separator = "|" + "|".join("---" for _ in header.strip("|").split("|")) + "|"
    return "\n".join([f"## Papers for {date}", "", header, separator, *rows, ""])


# --- the real corpus ---------------------------------------------------------------------------


def test_every_corpus_file_yields_each_linked_paper_once(seed_files: list[Path], daily_files: list[Path]) -> None:
    assert seed_files and daily_files
    for path in [*seed_files, *daily_files]:
        result = parse_file(path)
        assert result.warnings == [], path
        day = only_day(result)
        assert day.source == str(path)
        ids = [paper.arxiv_id for paper in day.papers]
        assert len(ids) == len(set(ids)), path
        assert set(ids) == set(LINKED_ID.findall(path.read_text(encoding="utf-8"))), path


def test_every_corpus_paper_has_a_clean_title_an_id_and_a_summary(
    seed_files: list[Path], daily_files: list[Path]
) -> None:
    for path in [*seed_files, *daily_files]:
        for paper in only_day(parse_file(path)).papers:
            where = f"{path}:{paper.line}"
            assert paper.arxiv_id and paper.title and summary_of(paper), where
            assert paper.title == " ".join(paper.title.split()), where
            for residue in ("](", "[arXiv]", "Read more", "read more", "(Read", "|"):
                assert residue not in paper.title, (where, paper.title)
            assert paper.links["arxiv"] == f"https://arxiv.org/abs/{paper.arxiv_id}", where
            assert paper.links["pdf"] == f"https://arxiv.org/pdf/{paper.arxiv_id}", where
            assert paper.categories == [], where
            assert all(name and name == name.strip() and "," not in name for name in paper.authors), where


def test_seeds_give_their_days_and_paper_counts(seed_files: list[Path]) -> None:
    days = [only_day(parse_file(path)) for path in seed_files]
    assert [len(day.papers) for day in days] == [13, 3, 19, 15, 22]
    assert [day.date.isoformat() for day in days] == SEED_DATES


def test_seed_002_takes_categories_from_its_column(seed_files: list[Path]) -> None:
    path = seed_files[2]
    lines = path.read_text(encoding="utf-8").split("\n")
    papers = only_day(parse_file(path)).papers
    for paper in papers:
        category_cell = lines[paper.line - 1].split("|")[1].strip()
        assert category_cell and paper.category == category_cell
    assert len({paper.category for paper in papers}) > 1


def test_table_seeds_have_no_category_and_authors_from_their_cells(seed_files: list[Path]) -> None:
    path = seed_files[0]
    lines = path.read_text(encoding="utf-8").split("\n")
    for paper in only_day(parse_file(path)).papers:
        assert paper.category is None
        assert paper.published is None
        assert paper.links["huggingface"] == f"https://huggingface.co/papers/{paper.arxiv_id}"
        first_author = paper.authors[0]
        assert first_author in lines[paper.line - 1] or first_author in lines[paper.line]


# --- table variants, hand-written --------------------------------------------------------------


def test_pipes_inside_a_summary_stay_in_the_summary() -> None:
    text = digest(
        "2030-01-02",
        row("Policy Odds", "Ann Lee, Bo Ek", "We maximise π(y|x) and bound |G-1| by 2.", "3001.00001"),
        row("Plain", "Cy Do", "No pipes here.", "3001.00002"),
    )
    papers = only_day(parse_text(text, "t.md")).papers
    assert [p.summary for p in papers] == ["We maximise π(y|x) and bound |G-1| by 2.", "No pipes here."]
    assert papers[0].authors == ["Ann Lee", "Bo Ek"]
    assert papers[0].title == "Policy Odds"


def test_escaped_pipes_are_read_as_pipes() -> None:
    text = digest("2030-01-02", row("Escapes", "Ann Lee", r"Odds p(a\|b) stay whole.", "3001.00003"))
    assert only_day(parse_text(text, "t.md")).papers[0].summary == "Odds p(a|b) stay whole."


def test_an_empty_authors_cell_gives_no_authors() -> None:
    text = digest("2030-01-02", row("Anonymous Work", "", "A summary.", "3001.00004"))
    paper = only_day(parse_text(text, "t.md")).papers[0]
    assert paper.authors == []
    assert paper.summary == "A summary."


def test_a_day_without_rows_is_an_empty_day() -> None:
    result = parse_text(digest("2030-01-03"), "t.md")
    assert result.warnings == []
    day = only_day(result)
    assert day.date == dt.date(2030, 1, 3)
    assert day.papers == []


def test_a_title_wrapped_onto_a_second_line_is_joined() -> None:
    wrapped = row("Long Title About", "Ann Lee", "Wrapped.", "3001.00005").replace(
        "About (Read", "About\n  Several Things (Read"
    )
    text = digest("2030-01-02", wrapped, row("Next", "Bo Ek", "After it.", "3001.00006"))
    result = parse_text(text, "t.md")
    papers = only_day(result).papers
    assert [p.title for p in papers] == ["Long Title About Several Things", "Next"]
    assert [p.line for p in papers] == [5, 7]
    assert result.warnings == []


def test_a_link_column_gives_the_id_and_a_plain_title() -> None:
    header = "| Title | Authors | Summary | Link |"
    rows = [
        "| Linked Column Paper | Ann Lee | Has | a pipe. | [Read more](https://arxiv.org/abs/3001.00007) |",
        "| Second | Bo Ek | Plain. | [Read more](https://arxiv.org/abs/3001.00008v2) |",
    ]
    papers = only_day(parse_text(digest("2030-01-02", *rows, header=header), "t.md")).papers
    assert [(p.arxiv_id, p.title, p.summary) for p in papers] == [
        ("3001.00007", "Linked Column Paper", "Has | a pipe."),
        ("3001.00008", "Second", "Plain."),
    ]
    assert papers[1].links == {"arxiv": "https://arxiv.org/abs/3001.00008", "pdf": "https://arxiv.org/pdf/3001.00008"}


def test_the_dash_read_more_form_is_removed_from_the_title() -> None:
    line = (
        "| Dash Form Paper - read more on [arXiv](https://arxiv.org/abs/3001.00009) or "
        "[HuggingFace](https://huggingface.co/papers/3001.00009) | Ann Lee | Early style. |"
    )
    paper = only_day(parse_text(digest("2030-01-02", line), "t.md")).papers[0]
    assert paper.title == "Dash Form Paper"
    assert paper.links["huggingface"] == "https://huggingface.co/papers/3001.00009"


def test_columns_are_found_by_header_name_not_position() -> None:
    header = "| Authors | Category | Title | Summary |"
    line = "| Ann Lee | Robotics | Reordered [arXiv](https://arxiv.org/abs/3001.00010) | Order free. |"
    paper = only_day(parse_text(digest("2030-01-02", line, header=header), "t.md")).papers[0]
    assert (paper.title, paper.authors, paper.category, paper.summary) == (
        "Reordered",
        ["Ann Lee"],
        "Robotics",
        "Order free.",
    )


def test_pdf_links_versions_and_old_style_ids() -> None:
    rows = [
        "| Old Style [arXiv](https://arxiv.org/abs/hep-th/9901001v3) | Ann Lee | Old. |",
        "| From Pdf [arXiv](http://arxiv.org/pdf/3001.00011v2) | Bo Ek | Pdf. |",
    ]
    papers = only_day(parse_text(digest("2030-01-02", *rows), "t.md")).papers
    assert [p.arxiv_id for p in papers] == ["hep-th/9901001", "3001.00011"]
    assert papers[0].links["arxiv"] == "https://arxiv.org/abs/hep-th/9901001"
    assert papers[1].links["pdf"] == "https://arxiv.org/pdf/3001.00011"


def test_summaries_keep_their_markdown_and_are_not_escaped() -> None:
    summary = 'i) **Bold** claim & <tag> "quoted"; ii) more.'
    paper = only_day(parse_text(digest("2030-01-02", row("Marks", "Ann", summary, "3001.00012")), "t.md")).papers[0]
    assert paper.summary == summary


def test_several_days_in_one_file_and_crlf_line_ends() -> None:
    first = digest("2030-01-02", row("One", "Ann", "First day.", "3001.00013"))
    second = digest("2030-01-03", row("Two", "Bo", "Second day.", "3001.00014"))
    result = parse_text((first + "\n" + second).replace("\n", "\r\n"), "t.md")
    assert [(d.date.isoformat(), [p.title for p in d.papers]) for d in result.days] == [
        ("2030-01-02", ["One"]),
        ("2030-01-03", ["Two"]),
    ]
    assert result.days[1].papers[0].summary == "Second day."


def test_the_same_paper_twice_in_a_day_keeps_the_first_and_warns() -> None:
    text = digest(
        "2030-01-02",
        row("Original", "Ann", "First.", "3001.00015"),
        row("Repeat", "Bo", "Second.", "3001.00015"),
    )
    result = parse_text(text, "t.md")
    assert [p.title for p in only_day(result).papers] == ["Original"]
    assert [(w.file, w.line) for w in result.warnings] == [("t.md", 6)]
    assert "3001.00015" in result.warnings[0].message and "twice" in result.warnings[0].message


def test_a_malformed_row_warns_with_its_line_and_the_others_still_parse() -> None:
    text = digest(
        "2030-01-02",
        row("Before", "Ann", "Fine.", "3001.00016"),
        "| Broken [arXiv](https://arxiv.org/abs/3001.00017) | only two cells",
        row("No Link", "Bo", "Fine.", "3001.00018").replace("arxiv.org/abs", "example.org/abs"),
        "| [arXiv](https://arxiv.org/abs/3001.00019) | Cy | Title missing. |",
        row("After", "Di", "Fine.", "3001.00020"),
    )
    result = parse_text(text, "bad.md")
    assert [p.title for p in only_day(result).papers] == ["Before", "After"]
    assert [(w.file, w.line) for w in result.warnings] == [("bad.md", 6), ("bad.md", 7), ("bad.md", 8)]
    assert "2 cell(s)" in result.warnings[0].message and "3" in result.warnings[0].message
    assert "no arXiv link" in result.warnings[1].message
    assert "empty title" in result.warnings[2].message
    assert str(result.warnings[0]).startswith("bad.md:6: ")


def test_an_invalid_heading_date_skips_that_section_only() -> None:
    text = digest("2030-02-30", row("Lost", "Ann", "Skipped.", "3001.00021")) + digest(
        "2030-03-01", row("Kept", "Bo", "Read.", "3001.00022")
    )
    result = parse_text(text, "t.md")
    assert [p.title for p in only_day(result).papers] == ["Kept"]
    assert len(result.warnings) == 1
    assert result.warnings[0].line == 1 and "2030-02-30" in result.warnings[0].message


def test_a_renamed_header_is_counted_drift_naming_the_header_and_its_cells_are_not_guessed() -> None:
    text = digest("2030-01-02", row("Renamed", "Ann Lee, Bo Chen", "Kept.", "3001.00030"),
                  header="| Paper | Who | Abstract |")
    result = parse_text(text, "t.md")
    (warning,) = result.warnings
    assert (warning.file, warning.line, warning.kind) == ("t.md", 3, "unknown_column")
    assert "'Who' is not a known column" in warning.message and "ignored" in warning.message
    assert result.health is not None and result.health.drift == {"unknown_column": 1}
    (paper,) = only_day(result).papers
    assert (paper.title, paper.summary, paper.authors) == ("Renamed", "Kept.", [])


def test_every_unknown_column_of_a_header_is_counted_even_when_the_header_is_unusable() -> None:
    text = digest("2030-01-02", row("Lost", "Ann", "x", "3001.00031"), header="| Name | Who | |")
    result = parse_text(text, "t.md")
    assert result.days == []
    unknown = [w for w in result.warnings if w.kind == "unknown_column"]
    assert len(unknown) == 3 and all(w.line == 3 for w in unknown)
    assert "'Name'" in unknown[0].message and "'Who'" in unknown[1].message and "empty header" in unknown[2].message
    assert result.health is not None and result.health.drift == {"unknown_column": 3}


@pytest.mark.parametrize("header", [
    "| title | AUTHORS | summary |",
    "|   Title   |Authors|  Summary   |",
    "| Title: | Authors: | Summary: |",
    "| **Title** | **Authors** | **Summary** |",
    "| Title | Author(s) | Summary |",
])
def test_header_names_in_another_case_spacing_or_markup_are_known_columns(header: str) -> None:
    text = digest("2030-01-02", row("Variant", "Ann Lee, Bo Chen", "Read.", "3001.00032"), header=header)
    result = parse_text(text, "t.md")
    assert result.warnings == []
    (paper,) = only_day(result).papers
    assert (paper.title, paper.authors, paper.summary) == ("Variant", ["Ann Lee", "Bo Chen"], "Read.")


def test_a_day_whose_every_row_is_unreadable_is_left_out_but_an_empty_table_is_a_day() -> None:
    unlinked = "| No link here | Ann | Text. |"
    text = digest("2030-01-02", unlinked, unlinked) + "\n" + digest("2030-01-03", row("Fine", "Bo", "y", "3001.00033"))
    result = parse_text(text, "t.md")
    assert [day.date for day in result.days] == [dt.date(2030, 1, 3)]
    assert [(day.date, day.papers) for day in result.unreadable] == [(dt.date(2030, 1, 2), [])]
    day_warning = result.warnings[-1]
    assert day_warning.line == 1 and "none of the 2 papers listed for 2030-01-02" in day_warning.message

    empty = parse_text(digest("2030-01-04"), "t.md")
    assert (only_day(empty).papers, empty.unreadable, empty.warnings) == ([], [], [])


def test_a_heading_without_a_table_warns() -> None:
    result = parse_text("## Papers for 2030-01-02\n\nNo table today.\n", "t.md")
    assert result.days == []
    assert [(w.line, "no table" in w.message) for w in result.warnings] == [(1, True)]


def test_a_header_without_title_or_summary_warns_and_skips_the_rows() -> None:
    text = digest("2030-01-02", row("Lost", "Ann", "x", "3001.00023"), header="| Name | Who | What |")
    result = parse_text(text, "t.md")
    assert result.days == []
    assert result.warnings[0].line == 3 and "Title" in result.warnings[0].message


@pytest.mark.parametrize("text", ["", "   \n\n\t\n"])
def test_empty_text_is_a_digest_error(text: str) -> None:
    with pytest.raises(DigestError, match="empty") as caught:
        parse_text(text, "empty.md")
    assert caught.value.path == "empty.md"
    assert caught.value.hint and "Papers for" in caught.value.hint


def test_a_text_that_is_no_digest_is_a_digest_error() -> None:
    prose = "# Meeting notes\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nNothing about papers here.\n"
    with pytest.raises(DigestError, match="not a digest") as caught:
        parse_text(prose, "notes.md")
    assert "notes.md" in str(caught.value)
    assert caught.value.hint and "## Papers for YYYY-MM-DD" in caught.value.hint


# --- detection, files and paths ----------------------------------------------------------------


def test_detect_format_reads_the_content() -> None:
    assert detect_format(digest("2030-01-02")) == "table"
    assert detect_format("ZH\n2030-01-02 Papers\n\n1/1\n\nPaper 1\n") == "cards-text"
    assert detect_format("<!DOCTYPE html>\n<html><body><div>2030-01-02 Papers</div></body></html>") == "cards-html"
    assert detect_format("just some words") is None
    assert detect_format("Papers for 2030-01-02 without a heading") is None


def test_parse_file_detects_the_format_whatever_the_name(tmp_path: Path) -> None:
    misleading = tmp_path / "cards.html"
    misleading.write_text(digest("2030-01-02", row("Named", "Ann", "Named wrong.", "3001.00024")), encoding="utf-8")
    assert [p.title for p in only_day(parse_file(misleading)).papers] == ["Named"]


def test_parse_file_replaces_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "junk.md"
    path.write_bytes(b"\xef\xbb\xbf" + digest("2030-01-02", row("Bytes \xff", "Ann", "ok", "3001.00025")).encode())
    path.write_bytes(path.read_bytes().replace(b"\xc3\xbf", b"\xff\xfe"))
    paper = only_day(parse_file(path)).papers[0]
    assert paper.title == "Bytes \ufffd\ufffd"
    binary = tmp_path / "binary.md"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DigestError, match="not a digest"):
        parse_file(binary)


def test_parse_file_on_a_folder_or_a_missing_file_is_a_digest_error(tmp_path: Path) -> None:
    with pytest.raises(DigestError, match="folder") as caught:
        parse_file(tmp_path)
    assert caught.value.path == str(tmp_path)
    with pytest.raises(DigestError, match="cannot be read"):
        parse_file(tmp_path / "absent.md")


def test_expand_paths_takes_files_folders_and_globs_once_each_sorted(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    files = [tmp_path / "a.md", tmp_path / "b" / "c.txt", tmp_path / "b" / "deep" / "d.html", tmp_path / "b" / "e.HTM"]
    for path in files:
        path.write_text("x", encoding="utf-8")
    (tmp_path / "b" / "skip.json").write_text("{}", encoding="utf-8")
    (tmp_path / "b" / ".hidden").mkdir()
    (tmp_path / "b" / ".hidden" / "skip.md").write_text("x", encoding="utf-8")
    found = expand_paths([str(tmp_path / "b"), str(tmp_path / "*.md"), str(tmp_path / "a.md"), str(tmp_path / "b")])
    assert found == sorted(files)
    assert expand_paths([str(tmp_path / "**" / "*.txt")]) == [files[1]]


def test_expand_paths_names_a_pattern_that_matches_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.json").write_text("{}", encoding="utf-8")
    for pattern in [str(tmp_path / "nothing-*.md"), str(tmp_path / "empty"), str(tmp_path / "absent.md")]:
        with pytest.raises(DigestError) as caught:
            expand_paths([pattern])
        assert caught.value.path == pattern
        assert caught.value.hint
    with pytest.raises(DigestError, match="empty path"):
        expand_paths([" "])
