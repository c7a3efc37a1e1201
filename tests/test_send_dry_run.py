"""`newsletter send --dry-run` end to end: real SQLite store, seed 002 ingested, real CLI, .eml parsed back."""

from __future__ import annotations

import email
import json
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpers import run, write_config
from newsletter import tokens
from newsletter.config import load_settings
from newsletter.models import Subscriber
from newsletter.parsing import parse_file
from newsletter.store import Store

ARXIV_ABS = re.compile(r'href="https://arxiv\.org/abs/([^"]+)"')

# (email, name, categories, keywords); categories are seed 002's own Category cells.
SUBSCRIBERS = [
    ("all@example.org", "Ann All", [], []),
    ("cv@example.org", "Carl Vision", ["Computer Vision"], []),
    ("nlp-rl@example.org", "Zoë Ångström-Łukasiewicz", ["Natural Language Processing", "Reinforcement Learning"], []),
    ("mm@example.org", "", ["Multi-Modal"], []),
    ("nothing@example.org", "No Match", ["Computer Vision"], ["zzzz-no-such-word"]),
]


def seed_002(corpus_dir: Path) -> Path:
    found = sorted((corpus_dir / "seeds").glob("002_*"))
    if not found:
        pytest.skip("seed 002 is not in the corpus")
    return found[0]


def setup_project(folder: Path, digest: Path, extra: str = "", store_url: str = "sqlite:///var/test.db") -> Path:
    config = write_config(folder, extra=extra, digests=json.dumps([str(digest)]), store_url=store_url)
    assert run(config, "ingest").exit_code == 0
    with Store.from_settings(load_settings(config)) as store:
        for address, name, categories, keywords in SUBSCRIBERS:
            store.add_subscriber(Subscriber(email=address, name=name, categories=categories, keywords=keywords,
                                            token=f"tok-{address.split('@')[0]}"))
        store.add_subscriber(Subscriber(email="gone@example.org", status="unsubscribed"))
    return config


def parse_eml(path: Path) -> tuple[bytes, EmailMessage]:
    raw = path.read_bytes()
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return raw, message


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path,
            module_store_url: str) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("dry-run")
    config = setup_project(folder, seed_002(corpus_dir), store_url=module_store_url)
    result = run(config, "send", "--dry-run")
    assert result.exit_code == 0, result.output
    return config, folder / "outbox" / "2025-05-13", result.output


@pytest.fixture(scope="module")
def seed_papers(corpus_dir: Path) -> list[tuple[str, str | None]]:
    """(arXiv id, the digest's own Category cell) for every paper of seed 002."""
    day = parse_file(seed_002(corpus_dir)).days[0]
    return [(p.arxiv_id, p.category) for p in day.papers]


def test_every_eml_parses_without_defects_and_has_the_headers(dry_run: tuple[Path, Path, str]) -> None:
    _config, outbox, _output = dry_run
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 4
    for path in files:
        raw, message = parse_eml(path)
        assert message.defects == []
        assert all(part.defects == [] for part in message.walk())
        assert b"\n" not in raw.replace(b"\r\n", b"")
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert all(p.get_content_charset() == "utf-8" for p in parts)
        for header in ("From", "To", "Date", "Subject", "Message-ID", "MIME-Version", "List-Id"):
            assert message[header], header
        assert message["From"] == "Test Papers <papers@example.org>"
        papers = len(ARXIV_ABS.findall(parts[1].get_content())) // 2
        assert message["Subject"] == f"Test Papers: {papers} paper{'' if papers == 1 else 's'} for 13 May 2025"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert re.fullmatch(r"<20250513\.[0-9a-f]{24}@example\.org>", message["Message-ID"])


def test_each_subscriber_gets_the_papers_of_their_categories(
    dry_run: tuple[Path, Path, str], seed_papers: list[tuple[str, str | None]]
) -> None:
    _config, outbox, _output = dry_run
    plan = json.loads((outbox / "plan.json").read_text())
    by_address = {m["to"]: m for m in plan["messages"]}
    assert set(by_address) == {"all@example.org", "cv@example.org", "nlp-rl@example.org", "mm@example.org"}
    for address, _name, categories, _keywords in SUBSCRIBERS[:4]:
        expected = {arxiv for arxiv, category in seed_papers if not categories or category in categories}
        entry = by_address[address]
        assert set(entry["papers"]) == expected
        _raw, message = parse_eml(outbox / entry["file"])
        html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
        assert html_part is not None and text_part is not None
        # Each paper links its arXiv page twice (title and links row); nothing else is linked there.
        assert set(ARXIV_ABS.findall(html_part.get_content())) == expected
        assert {a for a in expected if f"https://arxiv.org/abs/{a}" in text_part.get_content()} == expected
        assert message["To"].addresses[0].addr_spec == address


def test_personal_links_and_headers(dry_run: tuple[Path, Path, str]) -> None:
    config, outbox, _output = dry_run
    plan = json.loads((outbox / "plan.json").read_text())
    entry = next(m for m in plan["messages"] if m["to"] == "nlp-rl@example.org")
    _raw, message = parse_eml(outbox / entry["file"])
    assert message["To"].addresses[0].display_name == "Zoë Ångström-Łukasiewicz"
    signed = tokens.for_settings(load_settings(config))
    unsubscribe, preferences = signed.make("unsubscribe", "tok-nlp-rl"), signed.make("preferences", "tok-nlp-rl")
    assert message["List-Unsubscribe"] == (
        f"<https://papers.example.org/unsubscribe/{unsubscribe}>, "
        "<mailto:unsubscribe@example.org?subject=unsubscribe%20tok-nlp-rl>")
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    html, text = html_part.get_content(), text_part.get_content()
    for content in (html, text):
        assert f"https://papers.example.org/unsubscribe/{unsubscribe}" in content
        assert f"https://papers.example.org/preferences/{preferences}" in content
        assert "https://papers.example.org/archive/2025-05-13" in content
        assert "nlp-rl@example.org" in content
        assert "Natural Language Processing, Reinforcement Learning" in content
    assert "Hi Zoë Ångström-Łukasiewicz," in text
    assert "tok-all" not in html


def test_skipped_and_summary(dry_run: tuple[Path, Path, str]) -> None:
    _config, outbox, output = dry_run
    plan = json.loads((outbox / "plan.json").read_text())
    assert plan["date"] == "2025-05-13"
    assert plan["skipped"] == [{"to": "nothing@example.org",
                                "reason": "no papers match Computer Vision; mentioning “zzzz-no-such-word”"}]
    assert "gone@example.org" not in json.dumps(plan)
    assert re.search(r"Recipients\s+4\b", output)
    assert re.search(r"Renditions\s+4\b", output)
    assert re.search(r"Skipped\s+1\b", output)
    assert "no papers match" in output


def test_index_previews_every_rendition_without_scripts(dry_run: tuple[Path, Path, str]) -> None:
    _config, outbox, _output = dry_run
    index = (outbox / "index.html").read_text()
    assert "<script" not in index.lower()
    previews = re.findall(r'<iframe class="wide" src="([^"]+)"', index)
    assert len(previews) == 4
    for preview in previews:
        assert (outbox / preview).read_text().startswith("<!DOCTYPE html>")


def test_running_twice_gives_the_same_plan(dry_run: tuple[Path, Path, str]) -> None:
    config, outbox, _output = dry_run
    before = (outbox / "plan.json").read_text()
    first = {p.name: _without_date(p.read_bytes()) for p in outbox.glob("*.eml")}
    assert run(config, "send", "--dry-run").exit_code == 0
    assert (outbox / "plan.json").read_text() == before
    assert {p.name: _without_date(p.read_bytes()) for p in outbox.glob("*.eml")} == first


def _without_date(raw: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", raw)


@pytest.mark.usefixtures("store_backend")
def test_above_the_threshold_one_sample_per_rendition_replaces_earlier_files(
    tmp_path: Path, corpus_dir: Path
) -> None:
    config = setup_project(tmp_path, seed_002(corpus_dir))
    assert run(config, "send", "--dry-run").exit_code == 0
    outbox = tmp_path / "outbox" / "2025-05-13"
    assert len(list(outbox.glob("*.eml"))) == 4
    config.write_text(config.read_text().replace('outbox = "outbox"', 'outbox = "outbox"\nsample_threshold = 3'))
    result = run(config, "send", "--dry-run", "--date", "2025-05-13")
    assert result.exit_code == 0, result.output
    assert "one sample" in result.output
    files = sorted(p.name for p in outbox.glob("*.eml"))
    assert len(files) == 4 and all(f.startswith("sample-") for f in files)
    plan = json.loads((outbox / "plan.json").read_text())
    assert sorted(m["file"] for m in plan["messages"] if m["file"]) == files


@pytest.mark.usefixtures("store_backend")
def test_a_day_without_papers_skips_everyone_and_writes_only_the_plan(tmp_path: Path) -> None:
    digest = tmp_path / "digests" / "empty.md"
    digest.parent.mkdir()
    digest.write_text("## Papers for 2025-01-01\n\n| Title | Authors | Summary |\n|---|---|---|\n")
    config = setup_project(tmp_path, digest)
    out = tmp_path / "elsewhere"
    result = run(config, "send", "--dry-run", "--outbox", str(out))
    assert result.exit_code == 0, result.output
    plan = json.loads((out / "2025-01-01" / "plan.json").read_text())
    assert plan["messages"] == []
    assert {s["reason"] for s in plan["skipped"]} == {"no papers on 2025-01-01"}
    assert len(plan["skipped"]) == len(SUBSCRIBERS)
    assert sorted(p.name for p in (out / "2025-01-01").iterdir()) == ["plan.json"]


@pytest.mark.usefixtures("store_backend")
@pytest.mark.parametrize("dry_run", [["--dry-run"], []], ids=["dry-run", "real"])
def test_an_empty_store_is_work_that_failed_not_a_usage_error(tmp_path: Path, dry_run: list[str]) -> None:
    # Nothing ingested yet is a state of the store, not a wrong command line: exit 1, with the step to take.
    config = write_config(tmp_path)
    result = run(config, "send", *dry_run)
    assert result.exit_code == 1, result.output
    assert "nothing has been ingested yet" in result.stderr and "run `newsletter ingest` first" in result.stderr


@pytest.mark.usefixtures("store_backend")
def test_usage_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "digests").mkdir()
    result = run(config, "send", "--dry-run", "--date", "2025-13-01")
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output
