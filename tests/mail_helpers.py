"""Messages from synthetic papers: settings, sample papers, a plan for them, and a strict parse of the bytes."""

from __future__ import annotations

import datetime as dt
import email
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.config import Settings, settings_from_dict
from newsletter.dispatch.plan import Plan, plan_day
from newsletter.models import Paper, Point, QuizQuestion, Subscriber

DAY = dt.date(2025, 5, 13)
FIXED_NOW = dt.datetime(2025, 5, 13, 6, 30, tzinfo=dt.UTC)
SECRET_ENV = "NEWSLETTER_TEST_MAIL_SECRET"


@pytest.fixture(autouse=True, scope="module")
def link_signing_key() -> Iterator[None]:
    """A fixed key, so that the signed links in the golden message are the same on every run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SECRET_ENV, "golden-key-" + "k" * 32)
        yield


def make_settings(tmp: Path | None = None, summary: str = "short") -> Settings:
    return settings_from_dict({
        "site": {"title": "Test Papers", "base_url": "https://papers.example.org/"},
        "email": {"from": "Test Papers <papers@example.org>", "postal_address": "1 Example Road, Exampleton",
                  "summary": summary},
        "web": {"secret_env": SECRET_ENV},
    }, (tmp or Path("/nonexistent")) / "config.toml")


CARD_POINTS = [Point(label, f"{label} of the paper.") for label in
               ("Topic and Domain", "Previous Research and New Ideas", "Problem", "Methods", "Results and Evaluation")]


def sample_papers() -> list[Paper]:
    return [
        Paper(arxiv_id="2505.00001", title="Sparse Mixtures for Long Documents",
              authors=["Ana Souza", "Bo Chen", "Chidi Okafor", "Dana Levi", "Emil Berg"],
              summary="We show that **sparse** routing cuts cost by *40%* on `long` inputs.",
              categories=["Natural Language Processing"],
              links={"arxiv": "https://arxiv.org/abs/2505.00001", "huggingface": "https://huggingface.co/papers/2505.00001"}),
        Paper(arxiv_id="2505.00002", title="Depth from a Single Café Photo",
              authors=["Łukasz Nowak"], summary="Monocular depth < 5 cm error & fast.",
              categories=["Computer Vision"], links={"arxiv": "https://arxiv.org/abs/2505.00002"}),
        Paper(arxiv_id="2505.00003", title="Cards Paper With a Quiz", categories=["Computer Vision"],
              # No summary: a card has none (the cards parser leaves it empty).
              links={"arxiv": "https://arxiv.org/abs/2505.00003", "pdf": "https://arxiv.org/pdf/2505.00003"},
              points=CARD_POINTS,
              quiz=[QuizQuestion("Which method is used?", ("Ray tracing", "Diffusion", "Voxels"), "Diffusion"),
                    QuizQuestion("How large is the dataset?", ("1k", "10k", "100k"))]),
    ]


def build(papers: list[Paper], subscribers: list[Subscriber], tmp: Path | None = None, summary: str = "short") -> Plan:
    return plan_day(make_settings(tmp, summary), DAY, papers, subscribers, clock=lambda: FIXED_NOW)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message.defects == [] and all(part.defects == [] for part in message.walk())
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"")
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "[click](javascript:alert(1))",
    "<a href=\"javascript:alert(1)\">x</a>",
    "{{ 7*7 }} {% raw %}",
    "<svg/onload=alert(1)>",
    "</style><style>body{display:none}</style>",
    "' onmouseover='alert(1)",
    "<iframe src=//evil.example>",
]
