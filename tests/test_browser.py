"""The report in a real browser: headless Chromium opens report.html from disk (file:// URL).

Fails on any console error (SEVERE log entry) and on any image that did not load; saves a
full-page screenshot next to the test's temporary files. Needs Debian's `chromium` and
`chromium-driver` packages and the `selenium` Python package (the test extra); without them the
test is skipped, unless AUTOENC_REQUIRE_BROWSER=1 (as in CI), where it fails instead.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import struct
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_NAMES = ("chromedriver",)
MAX_HEIGHT = 30000  # px: Chromium refuses larger windows; a taller page is cut there


def _missing() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(shutil.which(n) for n in CHROMIUM_NAMES):
        return "chromium is not installed (apt-get install -y chromium chromium-driver)"
    if not any(shutil.which(n) for n in DRIVER_NAMES):
        return "chromedriver is not installed (apt-get install -y chromium-driver)"
    return None


def _require_browser() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("AUTOENC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"AUTOENC_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def open_chromium(profile_dir: Path):
    """A headless Chromium WebDriver with a fresh profile in `profile_dir` and the browser console
    log enabled."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    binary = next(shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n))
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile_dir}", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=next(shutil.which(n) for n in DRIVER_NAMES if shutil.which(n)))
    return webdriver.Chrome(options=options, service=service)


def check_page(html_path: Path, screenshot: Path, profile_dir: Path) -> dict:
    """Open `html_path` from disk, save a full-page PNG screenshot to `screenshot` and return
    {"errors": SEVERE console entries, "broken": images not loaded, "images": count,
    "height": page height in px, "title": page title}."""
    driver = open_chromium(profile_dir)
    try:
        driver.set_page_load_timeout(60)
        driver.get(html_path.resolve().as_uri())
        images = driver.execute_script("return Array.from(document.images).map("
                                       "i => [i.alt, i.complete, i.naturalWidth, i.src.slice(0, 22)]);")
        broken = [img for img in images if not img[1] or img[2] <= 0]
        height = int(driver.execute_script(
            "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight);"))
        width = int(driver.execute_script("return Math.max(1280, document.documentElement.scrollWidth);"))
        driver.set_window_size(width, min(height + 200, MAX_HEIGHT))
        driver.save_screenshot(str(screenshot))
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        return {"errors": errors, "broken": broken, "images": images, "height": height, "title": driver.title}
    finally:
        driver.quit()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="session")
def chromium_ready() -> None:
    """Skip (or fail under AUTOENC_REQUIRE_BROWSER=1) before the quick study is run for nothing."""
    _require_browser()


def test_quick_report_in_chromium(chromium_ready, quick_study, tmp_path):
    html = quick_study / "report.html"
    assert html.is_file(), "the quick study did not write report.html"
    shot = tmp_path / "report.png"
    result = check_page(html, shot, tmp_path / "chromium-profile")
    assert not result["errors"], f"console errors: {result['errors']}"
    assert result["images"], "the report shows no images"
    assert not result["broken"], f"images that did not load: {result['broken']}"
    assert all(src.startswith("data:image/png;base64") for _, _, _, src in result["images"])
    assert "autoenc" in result["title"]
    width, height = _png_size(shot)
    assert width >= 800 and height >= min(result["height"], 2000), (width, height)
    assert shot.stat().st_size > 50_000, "the screenshot looks empty"
    print(f"screenshot: {shot} ({width} x {height} px, page {result['height']} px, {len(result['images'])} images)")
