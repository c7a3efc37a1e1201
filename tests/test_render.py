"""The renderer's HTML: inlined CSS that keeps its @media rules, dark mode, packaging of templates/."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

from newsletter import render
from newsletter.selection import Filter
from tests.test_mail import make_settings, sample_papers

ROOT = Path(__file__).resolve().parent.parent


def rendered_html() -> str:
    settings = make_settings()
    context, ids = render.digest_context(
        site_title="Test Papers", sender=settings.email.sender, date=dt.date(2025, 5, 13),
        papers=sample_papers(), filt=Filter(), category_order=settings.categories.names,
        archive_url="https://papers.example.org/archive/2025-05-13", postal_address="",
        personal={"greeting": "Hi,", "email": "e@example.org", "unsubscribe_url": "https://u", "preferences_url": "https://p"},
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
