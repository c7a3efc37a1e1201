"""The email as mail clients see it (issue 17): it fits a phone with and without its <style> block
(headless Chromium), doiuse-email (caniemail.com's data) for Gmail, Outlook and Apple Mail reports
only features that have a fallback, and the Nu Html Checker (vnu) only documented email workarounds.

Chromium comes from Debian (`chromium`, `chromium-driver`); doiuse-email and vnu-jar from npm, vnu
running on Java. `.ci/run` installs them (npm packages into .tools/, or $NEWSLETTER_NODE_TOOLS);
each test skips, saying what is missing, where they are not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from browser_helpers import CHROMEDRIVER, CHROMIUM
from mail_helpers import build, link_signing_key, parse, parts  # noqa: F401 (the fixture signs links)
from newsletter.models import Paper, Point, QuizQuestion, Subscriber

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = Path(os.environ.get("NEWSLETTER_NODE_TOOLS", ROOT / ".tools")) / "node_modules"
DOIUSE = NODE_MODULES / "doiuse-email" / "bin" / "cli.js"
VNU = NODE_MODULES / "vnu-jar" / "build" / "dist" / "vnu.jar"
CLIENTS = "gmail.*,outlook.*,apple-mail.*"
STYLE_BLOCK = re.compile(r"<style[^>]*>.*?</style>", re.S)

# Every feature doiuse-email reports as unsupported or partly supported by some Gmail, Outlook or
# Apple Mail client, with the fallback that makes it harmless there. A new feature fails the test.
DOIUSE_ALLOWED = {
    "@media": "refinements only (phone padding, font sizes, dark mode): the layout is fluid from inline styles",
    "<body> element": "Gmail and Outlook replace <body>; its background and font are repeated on the outer "
                      "table and the sheet",
    "Local anchors": "the 'In this issue' links jump to each paper where supported; elsewhere the papers "
                     "follow in the same order",
    "display:none": "preheader only; max-height 0, font-size 1px, opacity 0 and mso-hide hide it elsewhere",
    "display": "preheader only (display:none), see above",
    "opacity": "preheader only; the other hiding properties cover clients without it",
    "overflow": "preheader only; the other hiding properties cover clients without it",
    "role attribute": "role=presentation only helps screen readers; the tables are plain layout either way",
    "margin": "no negative, auto-only or <span> margins are relied on; paragraph spacing is cosmetic",
    "padding": "Outlook for Windows ignores padding on <p>/<div>: text is flush but nothing overflows",
    "line-height": "Outlook for Windows computes px line heights slightly differently: cosmetic",
    "max-width": "Outlook for Windows ignores it: the 600 px ghost table in conditional comments stands in; "
                 "Apple Mail iOS supports it on the sheet table used here",
    "width attribute": "width=100% on layout tables is the hybrid layout's fallback where CSS widths are ignored",
    "height attribute": "premailer's height on the spacer cell; a spacer of another height is cosmetic",
    "letter-spacing": "small caps labels only: cosmetic",
    "text-transform": "category labels show in their own case: cosmetic",
    "font-weight": "only 600/700 are used; clients that round them still show bold",
    "text-decoration": "links keep their underline where 'none' is ignored: cosmetic",
    "table-layout": "lets long words wrap instead of widening the sheet; Outlook for Windows gets the 600 px "
                    "ghost table (no phone screens), and Gmail's mobile webmail at worst a wider email",
}
# Every message of the Nu Html Checker, by pattern, with why it is there on purpose.
VNU_ALLOWED = {
    r"The “(width|cellpadding|cellspacing|border|bgcolor|align|height)” attribute on the “(table|td|body)” "
    r"element is obsolete\.": "presentational attributes are what Outlook's Word engine and old Gmail apps "
                              "honour where CSS is dropped (premailer adds bgcolor from background-color)",
    r"CSS: “mso-hide”: Property “mso-hide” doesn't exist\.": "Outlook's own property, hiding the preheader",
}


def sample_papers() -> list[Paper]:
    points = [Point("Topic and Domain", "Depth from one photo."), Point("Results and Evaluation", "Errors fall.")]
    long_url = "https://github.com/" + "very-long-repository-name-" * 6 + "/blob/main/README.md"
    return [
        Paper(arxiv_id="2505.20001", title="Supercalifragilisticexpialidociousnessification-Transformers Explained",
              authors=["Ana Souza", "Bo Chen", "Chidi Okafor", "Dana Levi", "Emil Berg"],
              summary=f"We release **code** at {long_url}. It works. " + "Longer text follows here. " * 20,
              categories=["Natural Language Processing"], links={"arxiv": "https://arxiv.org/abs/2505.20001"}),
        Paper(arxiv_id="2505.20002", title="Depth from a Single Photo", categories=["Computer Vision"],
              points=points,  # no summary: a card has none
              quiz=[QuizQuestion("Which prior?", ("Diffusion", "GAN", "None"), "Diffusion")],
              links={"arxiv": "https://arxiv.org/abs/2505.20002", "pdf": "https://arxiv.org/pdf/2505.20002"}),
    ]


def reader() -> Subscriber:
    return Subscriber(email="a.rather.long.address.for.a.phone.screen@subdomain.example.org",
                      name="Maximiliane Konstantinopoulou-Papadimitriou", token="t")


def email_html(summary: str) -> str:
    plan = build(sample_papers(), [reader()], summary=summary)
    return parts(parse(plan.message_bytes(plan.messages[0])))[1]


@pytest.fixture(scope="module")
def emails(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The short and the full email, each also without its <style> block, as files."""
    folder = tmp_path_factory.mktemp("emails")
    files = {}
    for summary in ("short", "full"):
        html = email_html(summary)
        assert len(STYLE_BLOCK.findall(html)) == 1
        for name, page in ((summary, html), (f"{summary}-no-style", STYLE_BLOCK.sub("", html))):
            files[name] = folder / f"{name}.html"
            files[name].write_text(page, encoding="utf-8")
    return files


@pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()), reason=(
    f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver (.ci/run does)"))
@pytest.mark.parametrize("width", [375, 320, 600])
def test_the_email_fits_a_phone_with_and_without_its_style_block(
        browser: object, emails: dict[str, Path], width: int) -> None:
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    for name, path in emails.items():
        browser.get(path.as_uri())
        # clientWidth: the viewport less a scroll bar, where the page has one.
        viewport, scroll_width = browser.execute_script(
            "return [document.documentElement.clientWidth, document.documentElement.scrollWidth]")
        assert width - 20 < viewport <= width
        assert scroll_width == viewport, f"{name} overflows at {width} px"
        # The sheet spans the screen on a phone and stops at 600 px on a wider one.
        sheet = browser.execute_script("return document.querySelector('table.sheet').getBoundingClientRect().width")
        assert sheet == min(viewport, 600), name


def node_tool_missing(tool: Path, needs: str) -> str | None:
    if shutil.which(needs) is None:
        return f"needs {needs} on PATH (.ci/run installs it from Debian's packages)"
    if not tool.is_file():
        return f"needs {tool}: npm install --prefix {NODE_MODULES.parent} doiuse-email vnu-jar (.ci/run does)"
    return None


def test_doiuse_email_reports_only_features_with_a_fallback(emails: dict[str, Path]) -> None:
    missing = node_tool_missing(DOIUSE, "node")
    if missing:
        pytest.skip(missing)
    reported: dict[str, set[str]] = {}
    for name in ("short", "full"):
        result = subprocess.run(["node", str(DOIUSE), f"--email-clients={CLIENTS}", str(emails[name])],
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.stdout, result.stderr
        report = json.loads(result.stdout)
        for line in report["errors"] + report["warnings"]:
            feature = re.match(r"`([^`]+)`", line)
            assert feature is not None, line
            reported.setdefault(feature.group(1), set()).add(line)
    unexplained = {feature: sorted(lines)[:3] for feature, lines in reported.items() if feature not in DOIUSE_ALLOWED}
    assert unexplained == {}, "add a fallback, or a reason to DOIUSE_ALLOWED"
    assert "@media" in reported  # the checker did look at the CSS


def test_vnu_reports_only_documented_email_workarounds(emails: dict[str, Path]) -> None:
    missing = node_tool_missing(VNU, "java")
    if missing:
        pytest.skip(missing)
    result = subprocess.run(["java", "-jar", str(VNU), "--format", "json", "--also-check-css",
                             str(emails["short"]), str(emails["full"])],
                            capture_output=True, text=True, timeout=300, check=False)
    messages = json.loads(result.stderr or result.stdout)["messages"]
    assert messages, "vnu ran and reported the presentational attributes at least"
    unexplained = [f"{m['type']}: {m['message']}" for m in messages
                   if not any(re.match(pattern, m["message"]) for pattern in VNU_ALLOWED)]
    assert unexplained == []
