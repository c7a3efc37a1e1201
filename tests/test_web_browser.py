"""The subscribe form in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`)
driven by selenium against `newsletter serve`, with screenshots written to tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser_helpers import CHROMEDRIVER, CHROMIUM
from helpers import run
from newsletter.config import load_settings
from newsletter.store import Store
from smtp_helpers import smtp_server
from web_support import SECRET, SECRET_ENV, Inbox, link_in, local, newsletter_serve, web_config

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason=f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver (.ci/run does)",
)


@pytest.mark.usefixtures("store_backend")
def test_a_new_reader_subscribes_through_the_page(browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    assert isinstance(browser, WebDriver)
    address = "browser.reader@example.org"
    with pytest.MonkeyPatch.context() as patch, smtp_server(Inbox()) as smtp:
        patch.setenv(SECRET_ENV, SECRET)
        config = web_config(tmp_path, smtp.port)
        assert run(config, "ingest").exit_code == 0
        with newsletter_serve(config, dict(os.environ)) as base:
            browser.get(base + "/")
            assert browser.title == "Test Papers"
            browser.find_element(By.ID, "email").send_keys(address)
            browser.find_element(By.ID, "name").send_keys("Browser Reader")
            boxes = {box.get_attribute("value"): box for box in
                     browser.find_elements(By.CSS_SELECTOR, "input[type=checkbox][name=category]")}
            assert list(boxes) == load_settings(config).categories.names
            for category in ("Computer Vision", "Reinforcement Learning"):
                boxes[category].click()
                assert boxes[category].is_selected()
            browser.save_screenshot(str(tmp_path / "1-form-filled.png"))
            browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            # The answer, once it has replaced the form (the form's heading goes stale meanwhile).
            WebDriverWait(browser, 10).until(
                expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Check your inbox"))
            assert browser.find_element(By.TAG_NAME, "h1").text == "Check your inbox"
            assert address in browser.find_element(By.TAG_NAME, "main").text
            assert browser.current_url == base + "/subscribe"
            browser.save_screenshot(str(tmp_path / "2-check-your-inbox.png"))
            # The stylesheet loaded under the Content-Security-Policy: the masthead has its colour.
            masthead = browser.find_element(By.CSS_SELECTOR, "header.masthead")
            assert masthead.value_of_css_property("background-color") == "rgba(29, 58, 107, 1)"

            (confirmation,) = smtp.handler.wait_for(address)  # the store work happens after the answer
            with Store.from_settings(load_settings(config)) as store:
                pending = store.get_subscriber(address)
            assert pending is not None and pending.status == "pending"

            browser.get(local(link_in(confirmation, "confirm"), base))
            assert browser.find_element(By.TAG_NAME, "h1").text == "Confirm your subscription"
            browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()  # the GET changed nothing
            # The next page, once it has replaced this one (the old heading goes stale meanwhile).
            WebDriverWait(browser, 10).until(
                expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Subscription confirmed"))
            confirmed = browser.find_element(By.TAG_NAME, "h1")
            assert confirmed.text == "Subscription confirmed"
            browser.find_element(By.LINK_TEXT, "Change your preferences").click()
            WebDriverWait(browser, 10).until(expected_conditions.staleness_of(confirmed))
            boxes = {box.get_attribute("value"): box for box in
                     browser.find_elements(By.CSS_SELECTOR, "input[type=checkbox][name=category]")}
            ticked = [name for name, box in boxes.items() if box.is_selected()]
            assert ticked == ["Computer Vision", "Reinforcement Learning"]
            browser.save_screenshot(str(tmp_path / "3-preferences.png"))

    with Store.from_settings(load_settings(config)) as store:
        stored = store.get_subscriber(address)
    assert stored is not None
    assert (stored.status, stored.name, stored.categories) == (
        "active", "Browser Reader", ["Computer Vision", "Reinforcement Learning"])
    for shot in ("1-form-filled.png", "2-check-your-inbox.png", "3-preferences.png"):
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
