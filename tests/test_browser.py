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


def layout(html_path: Path, width: int, profile_dir: Path) -> dict:
    """Open `html_path` in a window `width` px wide and return {"overflow": px the page is wider
    than the window (0: no horizontal scrolling), "clipped": the visible tables wider than their
    box (each scrolls inside it: (caption, table width, box width)), "images": images wider than
    the page}."""
    driver = open_chromium(profile_dir)
    try:
        driver.set_page_load_timeout(60)
        driver.set_window_size(width, 900)
        driver.get(html_path.resolve().as_uri())
        return driver.execute_script("""
            var root = document.documentElement;
            var visible = function (e) { return e.offsetParent !== null; };
            return {
              overflow: Math.max(0, root.scrollWidth - root.clientWidth),
              clipped: Array.from(document.querySelectorAll('.table-wrap')).filter(visible)
                .filter(function (w) { return w.scrollWidth > w.clientWidth + 1; })
                .map(function (w) { var c = w.previousElementSibling;
                                    return [c ? c.textContent.slice(0, 60) : '', w.scrollWidth, w.clientWidth]; }),
              images: Array.from(document.images).filter(visible)
                .filter(function (i) { return i.getBoundingClientRect().right > root.clientWidth + 1; }).length
            };""")
    finally:
        driver.quit()


def sorted_by(html_path: Path, header: str, profile_dir: Path) -> str:
    """Click the head of column `header` of the report's sortable table and return the order its
    numbers then have: "ascending", "descending" or "unsorted"."""
    from selenium.webdriver.common.by import By

    driver = open_chromium(profile_dir)
    try:
        driver.get(html_path.resolve().as_uri())
        heads = driver.find_elements(By.CSS_SELECTOR, "table.sortable thead th")
        col = [h.get_attribute("textContent") for h in heads].index(header)
        driver.execute_script("arguments[0].click();", heads[col])
        cells = driver.execute_script("var col = arguments[0]; return Array.from(document.querySelector("
                                      "'table.sortable').tBodies[0].rows).map(function (r) { "
                                      "return r.cells[col].textContent; });", col)
        values = [float(c.replace("\u2212", "-")) for c in cells if c not in ("", "\u2013")]
        return ("ascending" if values == sorted(values) else "descending" if values == sorted(values, reverse=True)
                else "unsorted")
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def lab_shaped(tmp_path_factory):
    """A hand-made study of the lab's shape (two datasets, four latents, five noise levels, two
    seeds) with its report: the widest tables the default study writes."""
    from autoenc.report.sections import write_report
    from test_report import make_study

    study = make_study(tmp_path_factory.mktemp("lab-shaped") / "lab", datasets=("mnist", "fashion-mnist"),
                       latents=(15, 30, 50, 100), variances=(0.01, 0.04, 0.09, 0.16, 0.25))
    write_report(study)
    return study


@pytest.mark.parametrize("width", [400, 1400])
def test_the_report_never_overflows_the_page(chromium_ready, quick_study, lab_shaped, width, tmp_path):
    """At 400 px (a phone) nothing is wider than the page: galleries wrap, figures shrink, wide
    tables scroll inside their own box (first column fixed); at 1400 px no table needs to scroll."""
    for study in (quick_study, lab_shaped):
        result = layout(study / "report.html", width, tmp_path / f"profile-{study.name}")
        assert result["overflow"] == 0, (study.name, width, result)
        assert result["images"] == 0, (study.name, width, result)
        if width >= 1400:
            assert not result["clipped"], (study.name, result["clipped"])
        else:
            assert result["clipped"], "at 400 px the wide tables scroll inside their boxes"


def test_quick_report_in_chromium(chromium_ready, quick_study, tmp_path):
    html = quick_study / "report.html"
    assert html.is_file(), "the quick study did not write report.html"
    shot = tmp_path / "report.png"
    result = check_page(html, shot, tmp_path / "chromium-profile")
    assert not result["errors"], f"console errors: {result['errors']}"
    assert result["images"], "the report shows no images"
    assert not result["broken"], f"images that did not load: {result['broken']}"
    assert all(src.startswith("data:image/png;base64") for _, _, _, src in result["images"])
    assert not result["errors"], result["errors"]  # the sorting script runs without an error
    assert "autoenc" in result["title"]
    assert sorted_by(html, "psnr (dB)", tmp_path / "sort-profile") == "ascending"
    width, height = _png_size(shot)
    assert width >= 800 and height >= min(result["height"], 2000), (width, height)
    assert shot.stat().st_size > 50_000, "the screenshot looks empty"
    print(f"screenshot: {shot} ({width} x {height} px, page {result['height']} px, {len(result['images'])} images)")
