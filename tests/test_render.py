"""The renderer's HTML: inlined CSS that keeps its @media rules, dark mode, packaging of templates/."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

import pytest

from mail_helpers import make_settings, sample_papers
from newsletter import feeds, render, sanitize
from newsletter.models import Paper
from newsletter.selection import Filter

ROOT = Path(__file__).resolve().parent.parent


def rendered_html() -> str:
    settings = make_settings()
    context, ids = render.digest_context(
        site_title="Test Papers", sender=settings.email.sender, date=dt.date(2025, 5, 13),
        papers=sample_papers(), filt=Filter(), category_order=settings.categories.names,
        archive_url="https://papers.example.org/archive/2025-05-13", postal_address="",
        personal={"greeting": "Hi,", "email": "e@example.org", "unsubscribe_url": "https://u",
                  "preferences_url": "https://p", "feed_url": "https://f", "followed": ""},
    )
    return render.render_digest(context, ids).html


def test_css_is_inlined_and_media_rules_keep_important() -> None:
    html = rendered_html()
    inline = re.findall(r'style="([^"]*)"', html)
    assert any(re.search(r"font-size:\s*18px", style) for style in inline)  # .title, from the <style> block
    assert not any("!important" in style for style in inline)
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, re.S)
    assert len(styles) == 1
    assert "@media only screen and (max-width: 620px)" in styles[0]
    assert "@media (prefers-color-scheme: dark)" in styles[0]
    assert "width: 100% !important" in styles[0]
    assert '<meta name="color-scheme" content="light dark">' in html
    assert 'class="preheader"' in html


def test_short_authors() -> None:
    assert render.short_authors([]) == ""
    assert render.short_authors(["A", "B", "C", "D"]) == "A, B, C, D"
    assert render.short_authors(["A", "B", "C", "D", "E"]) == "A, B, C +2 more"


def test_render_page_escapes_html_by_default() -> None:
    page = render.render_page("outbox_index.html", date=dt.date(2025, 5, 13), skipped=0,
                              warnings=["<b>x</b>"], previews=[])
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_every_package_is_listed_for_the_wheel() -> None:
    """pyproject lists packages by hand (templates/ is mapped in), so a new subpackage must be added there."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "newsletter").rglob("__init__.py")}
    assert found | {"newsletter.templates"} <= listed
    assert (ROOT / "templates" / "__init__.py").is_file()


@pytest.mark.parametrize(("url", "web", "in_markdown", "in_feed"), [
    ("https://arxiv.org/abs/2505.00001", True, True, "https://arxiv.org/abs/2505.00001"),
    ("HTTP://Example.org", True, True, "HTTP://Example.org"),
    ("mailto:editor@example.org", False, True, None),
    ("javascript:alert(1)", False, False, None),
    ("data:text/html,hi", False, False, None),
    ("//evil.example/", False, False, None),
    ("https:///no-host", False, False, None),
    ("https:", False, False, None),
    ("relative/page.html", False, False, None),
    # The feeds clean and percent-encode first, then apply the same check.
    ("https://example.org/a b", False, False, "https://example.org/a%20b"),
    ("https://example.org/\x00", False, False, "https://example.org/"),
    ("javascript:x y", False, False, None),
])
def test_one_absolute_url_check_for_emails_feeds_and_markdown(url: str, web: bool, in_markdown: bool,
                                                              in_feed: str | None) -> None:
    assert (sanitize.absolute_url(url) == url) is web
    assert (sanitize.absolute_url(url, sanitize.SAFE_URL_SCHEMES) == url) is in_markdown
    paper = Paper(arxiv_id="x/y", title="T", summary="S", links={"huggingface": url, "pdf": url})
    context, _ids = render.digest_context(
        site_title="T", sender="T <t@example.org>", date=dt.date(2025, 5, 13), papers=[paper], filt=Filter(),
        category_order=[], archive_url="https://papers.example.org/archive/2025-05-13", postal_address="",
        personal={})
    [view] = context["groups"][0].papers
    assert (view.huggingface_url, view.pdf_url) == ((url, url) if web else (None, None))
    assert feeds._safe_url(url) == in_feed
