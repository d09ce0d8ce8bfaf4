"""The page at `GET /` in a real headless Chromium: type a text, submit, and read the rendered labels and bars.

Chromium is Debian's package (`make test` installs it when running as root); without it the test skips and says so.
"""

from __future__ import annotations

import re

import pytest
from serve_helpers import Browser, Server, find_browser, tiny_export

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

KEY_ENV = "TEXTCLS_SERVE_PAGE_KEY"
KEY = "page-test-key"
TEXT = "the film was lovely, the plot was great number3"


@pytest.fixture(scope="module")
def browser_path():
    path = find_browser()
    if path is None:
        pytest.skip("no Chromium on PATH: `make test` installs Debian's chromium as root, or apt-get install chromium")
    return path


@pytest.fixture(scope="module")
def server(browser_path, tmp_path_factory):
    model_dir = tiny_export(tmp_path_factory)
    server = Server(
        tmp_path_factory.mktemp("page-server"), "--model_dir", str(model_dir), "--api_key_env", KEY_ENV,
        env={KEY_ENV: KEY}, key=KEY,
    )  # fmt: skip
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _rendered(browser):
    return browser.evaluate(
        "({label: document.querySelector('#result .label')?.textContent ?? null,"
        " error: document.querySelector('#result .error')?.textContent ?? null,"
        " bars: [...document.querySelectorAll('#result .fill')].map(f => ({label: f.dataset.label,"
        " width: parseFloat(f.style.width), shown: f.parentElement.nextElementSibling.textContent}))})"
    )


def test_the_page_classifies_a_typed_text_offline(server, browser_path, tmp_path):
    status, page = server.get("/", use_key=False)
    assert status == 200 and "<textarea" in page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page), "the page must load nothing from other hosts"

    browser = Browser(browser_path, tmp_path)
    try:
        origin = f"http://127.0.0.1:{server.port}"
        browser.open(origin + "/")
        assert browser.evaluate("document.getElementById('key-row').hidden") is False  # it asks for the key

        # without the key: the server's error message, shown on the page
        browser.type_into("#text", TEXT)
        browser.click("#submit")
        browser.wait_for("document.body.dataset.state === 'done'")
        assert "API key" in (_rendered(browser)["error"] or "")

        browser.evaluate("delete document.body.dataset.state")
        browser.type_into("#key", KEY)
        browser.click("#submit")
        browser.wait_for("document.body.dataset.state === 'done' && !!document.querySelector('#result .label')")
        shown = _rendered(browser)
        screenshot = browser.screenshot(tmp_path / "serve_page.png")

        # every resource the page used came from the server itself
        resources = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert resources and all(url.startswith(origin) for url in resources), resources
    finally:
        browser.close()

    expected = server.predict({"text": TEXT})[1]["predictions"][0]
    assert shown["label"] == expected["label"] and shown["error"] is None
    assert [bar["label"] for bar in shown["bars"]] == list(expected["probabilities"])
    for bar in shown["bars"]:
        probability = expected["probabilities"][bar["label"]]
        assert bar["width"] == pytest.approx(100 * probability, abs=0.01)
        assert bar["shown"] == f"{100 * probability:.1f}%"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 5000
