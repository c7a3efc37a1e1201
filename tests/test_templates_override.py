"""An operator's templates folder ([site] templates) overrides shipped templates by name (issue 13, point 4)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from jinja2.exceptions import UndefinedError

from helpers import run, write_config
from newsletter import render

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "digests"


@pytest.fixture(autouse=True)
def shipped_templates_after() -> Iterator[None]:
    """The CLI runs in this process here, so put the shipped templates back for the tests that follow."""
    yield
    render.use_templates(None)


def config_with_templates(folder: Path, templates: str) -> Path:
    config = write_config(folder, digests=json.dumps([str(EXAMPLES)]))
    text = config.read_text(encoding="utf-8").replace("[site]\n", f'[site]\ntemplates = "{templates}"\n', 1)
    config.write_text(text, encoding="utf-8")
    return config


def test_a_missing_templates_folder_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    result = run(config_with_templates(tmp_path, "my-templates"), "ingest")
    assert result.exit_code == 2
    assert "site.templates" in result.output and str(tmp_path / "my-templates") in result.output


@pytest.mark.usefixtures("store_backend")
def test_a_template_in_the_folder_replaces_the_shipped_one_and_the_others_stay(tmp_path: Path) -> None:
    own = tmp_path / "my-templates" / "feed"
    own.mkdir(parents=True)
    (own / "digest_paper.html").write_text('<h3 class="mine">{{ title }}</h3>{{ paper.summary_html }}',
                                           encoding="utf-8")
    config = config_with_templates(tmp_path, "my-templates")
    assert run(config, "ingest").exit_code == 0
    assert run(config, "feeds").exit_code == 0

    digest = feedparser.parse((tmp_path / "feeds" / "digest.atom").read_bytes())
    assert digest.bozo == 0 and digest.entries
    content = digest.entries[0].content[0].value
    assert '<h3 class="mine">' in content and "Hugging Face" not in content
    papers = feedparser.parse((tmp_path / "feeds" / "papers.atom").read_bytes())
    assert papers.bozo == 0 and papers.entries and all(entry.summary for entry in papers.entries)


def test_the_folder_is_looked_up_first_then_the_shipped_templates(tmp_path: Path) -> None:
    own = tmp_path / "my-templates" / "web"
    own.mkdir(parents=True)
    (own / "message.html").write_text("mine: {{ text }}", encoding="utf-8")
    render.use_templates(own.parent)
    assert render.render_page("web/message.html", text="<hi>") == "mine: &lt;hi&gt;"
    shipped_page = render.render_page("outbox_index.html", date=dt.date(2025, 5, 13), skipped=0, warnings=[],
                                      previews=[])
    assert "2025" in shipped_page
    render.use_templates(None)
    with pytest.raises(UndefinedError):  # the shipped page, which needs the site's variables too
        render.render_page("web/message.html", text="<hi>")


@pytest.mark.usefixtures("store_backend")
@pytest.mark.parametrize(("name", "text", "line", "message"), [
    ("digest.html", "<p>\n{{ broken( }}\n</p>", 2, "unexpected '}'"),
    ("digest.txt", "Hello\n\n{{ nosuch.attr }}\n", 3, "'nosuch' is undefined"),
    ("feed/digest_paper.html", "{% include 'nowhere.html' %}", 1, "nowhere.html"),
])
def test_a_broken_template_of_the_operator_is_named_with_its_line_not_a_traceback(
        tmp_path: Path, name: str, text: str, line: int, message: str) -> None:
    template = tmp_path / "my-templates" / name
    template.parent.mkdir(parents=True)
    template.write_text(text, encoding="utf-8")
    config = config_with_templates(tmp_path, "my-templates")
    assert run(config, "ingest").exit_code == 0
    assert run(config, "subscribers", "add", "ada@example.org").exit_code == 0
    result = run(config, "feeds" if name.startswith("feed/") else "send", *([] if name.startswith("feed/") else
                                                                             ["--dry-run"]))
    assert result.exit_code == 2, result.output
    assert f"Error: {template}:{line}: " in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("store_backend")
def test_a_template_builds_on_the_shipped_one_of_its_name_as_shipped_slash_name(tmp_path: Path) -> None:
    own = tmp_path / "my-templates" / "digest.html"
    own.parent.mkdir(parents=True)
    own.write_text('{% extends "digest.html" %}{% block greeting %}Howdy{% endblock %}', encoding="utf-8")
    config = config_with_templates(tmp_path, "my-templates")
    assert run(config, "ingest").exit_code == 0
    assert run(config, "subscribers", "add", "ada@example.org").exit_code == 0
    itself = run(config, "send", "--dry-run")
    assert itself.exit_code == 2, itself.output
    assert f"Error: {own}:1: " in itself.stderr and 'extend "shipped/digest.html"' in itself.stderr, itself.stderr

    own.write_text(own.read_text(encoding="utf-8").replace('"digest.html"', '"shipped/digest.html"'), encoding="utf-8")
    built_on = run(config, "send", "--dry-run")
    assert built_on.exit_code == 0, built_on.output
    (message,) = (tmp_path / "outbox").rglob("*.eml")
    html = email.message_from_bytes(message.read_bytes(), policy=email.policy.default).get_body(("html",))
    assert "Howdy" in html.get_content() and "In this issue" in html.get_content()
