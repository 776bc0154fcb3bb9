"""The HTML report in a real headless browser (Debian's chromium): tables and images, no errors, offline."""

import os
import shutil
from pathlib import Path

import pytest

from lenet.analysis.report import build_report, write_report
from lenet.runs.files import read_runs

RUNS = Path(__file__).parent / "fixtures" / "runs"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = browser_missing()
    if reason:
        if os.environ.get("LENET_REQUIRE_BROWSER"):
            pytest.fail(f"LENET_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def test_report_page_shows_tables_and_images_without_errors(browser, tmp_path):
    frame = read_runs([RUNS]).frame
    report = build_report(frame[frame["phase"].isin(["train_step"]) | frame["phase"].isna()], image_formats=("png",))
    write_report(report, tmp_path / "report", formats=("html",))
    page = browser.new_page()
    problems, requests = [], []
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}") if message.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("request", lambda request: requests.append(request.url))
    page.goto((tmp_path / "report" / "report.html").as_uri())
    page.wait_for_load_state("load")

    assert page.title() == "LeNet benchmark report"
    # the other project's benchmarks, cpu train_step at batch 2 and 8, cuda train_step at batch 64
    assert page.locator("table").count() == 4
    headers = page.locator("h3").all_inner_texts()
    assert "cpu · train_step · batch 8" in headers and "cuda · train_step · batch 64" in headers
    first_cell = page.locator("table").nth(1).locator("tbody tr").first.locator("td").first.inner_text()
    assert first_cell == "cpu-contiguous-fp32-eager"
    images = page.locator("img")
    assert images.count() == len(report.figures) >= 4
    broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
    assert broken == 0
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    page.close()
