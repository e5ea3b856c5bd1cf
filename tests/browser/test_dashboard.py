"""The dashboard in a real headless Chromium: a task moves on screen when the page's button
advances the mock's manual clock.

Chromium and chromedriver come from Debian's packages (`scripts/install-browser.sh`, run by
`make test`); Selenium is pointed at them and never downloads a browser or a driver.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import SEED_AUDIO_URL
from tests.test_process import StartServer, start_server

__all__ = ["start_server"]  # the fixture, imported so pytest finds it here

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOT = ARTIFACTS / "dashboard.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 10.0
STATUS_CHANGE_BOUND_S = 1.0

pytestmark = pytest.mark.slow


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium from the system packages; CI fails instead of skipping without it."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium/chromedriver missing: run scripts/install-browser.sh")
        pytest.skip("chromium and chromedriver not installed (make test installs them)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1500,1100",
        "--no-proxy-server",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _create_task(
    http: httpx.Client, external_id: str, callback_url: str = "", volume: float = 1.0
) -> dict[str, Any]:
    session = http.post(
        "/v1/videos/identify-face", json={"video_url": "https://example.com/speaker.mp4"}
    ).json()["data"]["session_id"]
    body = {
        "session_id": session,
        "face_choose": [
            {
                "face_id": "0",
                "sound_file": SEED_AUDIO_URL,
                "sound_start_time": 0,
                "sound_end_time": 3000,
                "sound_insert_time": 1000,
                "sound_volume": volume,
            }
        ],
        "external_task_id": external_id,
        "callback_url": callback_url,
    }
    answer: dict[str, Any] = http.post("/v1/videos/advanced-lip-sync", json=body).json()
    return answer


def test_status_changes_on_screen_when_the_page_advances_the_clock(
    start_server: StartServer, browser: webdriver.Chrome
) -> None:
    """Open the dashboard, create a task by API, click "+4 s": the row turns succeed."""
    started = time.perf_counter()
    server = start_server(["--clock", "manual", "--callback-attempts", "2"])
    # The page redraws a table when the state changes: an element found a moment ago may be gone.
    wait = WebDriverWait(
        browser, WAIT_S, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]
    )
    browser.get(server.base_url + "/__admin/ui")
    wait.until(
        lambda d: "ok" in (d.find_element(By.ID, "live").get_attribute("class") or "").split()
    )
    assert browser.find_element(By.ID, "clock-mode").text == "manual"

    with server.client() as http:
        task_id = _create_task(http, "order-42")["data"]["task_id"]
        _create_task(http, "hooked-1", "http://127.0.0.1:9/kling-callback")  # nobody listens
        assert _create_task(http, "loud-1", volume=2.5)["code"] == 1201
        http.post("/__admin/faults", json={"kind": "latency", "latency_ms": 5, "times": 3})
        http.post("/__admin/callbacks/chaos", json={"task": "hooked-1", "duplicate": True})

    row = f'tr[data-task-id="{task_id}"] .status'
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row).text == "submitted")
    wait.until(lambda d: "volume-range" in d.find_element(By.ID, "journal").text)

    clicked = time.perf_counter()
    browser.find_element(By.ID, "advance-4s").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row).text == "succeed")
    status_change_s = time.perf_counter() - clicked
    reached = f'tr[data-task-id="{task_id}"] .phase.reached'
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, reached)) == 3)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#callbacks tbody tr td.code")) >= 3)
    with server.client() as http:  # one more, still submitted: its later phases show as planned
        later = _create_task(http, "later-1")["data"]["task_id"]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-task-id="{later}"]'))

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1500, height + 200)  # the whole page in one picture
    assert browser.save_screenshot(str(SCREENSHOT))
    size = SCREENSHOT.stat().st_size
    total_s = time.perf_counter() - started
    print(
        f"\ndashboard: status on screen {status_change_s * 1000:.0f} ms after the click; "
        f"test {total_s:.1f} s; screenshot {SCREENSHOT} ({size} bytes)"
    )
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and size > 20_000
    assert status_change_s < STATUS_CHANGE_BOUND_S


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/docs", "/v1/videos/advanced-lip-sync"), ("/__admin/docs", "/__admin/clock/advance")],
)
def test_docs_render_offline_in_swagger_ui(
    start_server: StartServer, browser: webdriver.Chrome, path: str, expected: str
) -> None:
    """Swagger UI, served by the mock, renders the spec's operations (no other host is asked)."""
    server = start_server([])
    started = time.perf_counter()
    browser.get(server.base_url + path)
    wait = WebDriverWait(browser, WAIT_S, poll_frequency=0.05)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
    rendered_s = time.perf_counter() - started
    blocks = browser.find_elements(By.CSS_SELECTOR, ".opblock")
    page = browser.find_element(By.ID, "swagger-ui").text
    assert expected in page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"docs{path.replace('/', '-')}.png"
    assert browser.save_screenshot(str(shot))
    print(f"\n{path}: {len(blocks)} operations rendered in {rendered_s * 1000:.0f} ms; {shot}")
    assert len(blocks) >= 5


def test_try_it_out_reaches_the_serving_mock(
    start_server: StartServer, browser: webdriver.Chrome
) -> None:
    """In the control API docs, "Try it out" on GET /__admin/clock gets the mock's answer."""
    server = start_server(["--clock", "manual"])
    wait = WebDriverWait(
        browser, WAIT_S, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]
    )
    browser.get(server.base_url + "/__admin/docs")

    def clock_summary(d: webdriver.Chrome) -> WebElement | bool:
        for block in d.find_elements(By.CSS_SELECTOR, ".opblock-get .opblock-summary"):
            if block.text.split()[1:2] == ["/__admin/clock"]:
                return block
        return False

    summary = wait.until(clock_summary)
    assert isinstance(summary, WebElement)
    summary.click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".opblock.is-open .try-out__btn")).click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".opblock.is-open .execute")).click()
    body = wait.until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".opblock.is-open .live-responses-table")
    )
    wait.until(lambda d: '"mode": "manual"' in body.text)
    assert (
        server.base_url + "/__admin/clock"
        in browser.find_element(By.CSS_SELECTOR, ".opblock.is-open .request-url").text
    )
