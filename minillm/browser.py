"""Headless Chromium for the attention explorer: open a page from disk, hover, read, check.

Holds `find_chromium` (Debian's `chromium` and `chromium-driver` packages, or the paths in
$CHROMIUM and $CHROMEDRIVER), `start_browser` (a headless session through selenium, which
logs every console message and network request), and `PageReport`/`open_page`: what a page
did when it was opened -- its console errors, uncaught exceptions and requests -- so the
tests, `bench/explorer.py` and `docs/explorer_screenshot.py` check it the same way.

Leaves out: building the page (`minillm.explorer`), and downloading a browser: selenium's
own browser and driver downloads cannot work offline, so only installed ones are used.
selenium is a development dependency (the `dev` extra), imported only here.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) paths, or None when either is missing."""
    browser = os.environ.get("CHROMIUM") or next(
        filter(None, map(shutil.which, CHROMIUM_NAMES)), None
    )
    driver = os.environ.get("CHROMEDRIVER") or next(
        filter(None, map(shutil.which, DRIVER_NAMES)), None
    )
    return (browser, driver) if browser and driver else None


def start_browser(width: int = 1400, height: int = 1000):
    """A headless Chromium session (selenium WebDriver) that records console messages and
    network events; raises RuntimeError when no Chromium is installed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("no Chromium found: install Debian's chromium and chromium-driver")
    browser, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars",
                "--disable-background-networking", "--no-first-run"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    # the page's viewport exactly width × height (the window's own frame takes some of it)
    session.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1,
                             "mobile": False})  # fmt: skip
    return session


@dataclass
class PageReport:
    """What a page did while it was open: anything here but `requests == [url]` is a fault."""

    url: str
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    def faults(self) -> list[str]:
        """Each error, and each request for anything but the page itself."""
        stray = [f"request for {u}" for u in self.requests if u != self.url]
        return self.errors + stray


def drain_report(driver, url: str) -> PageReport:
    """Read (and so clear) the browser's logs since the last call into a PageReport."""
    report = PageReport(url)
    for entry in driver.get_log("browser"):
        if entry["level"] in ("SEVERE", "ERROR"):
            report.errors.append(entry["message"])
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            report.requests.append(message["params"]["request"]["url"])
    page_errors = driver.execute_script(
        "const e = document.getElementById('errors'); return e ? e.textContent : '';"
    )
    if page_errors:
        report.errors.append(page_errors)
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    report.requests += [u for u in resources if u not in report.requests]
    return report


def open_page(driver, path: str | Path) -> PageReport:
    """Open an HTML file from disk, wait until its script has drawn it, report what it did."""
    from selenium.webdriver.support.ui import WebDriverWait

    url = Path(path).resolve().as_uri()
    for log in ("browser", "performance"):  # drop what earlier pages logged
        driver.get_log(log)
    driver.get(url)
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script(
            "return document.body.dataset.ready === '1' || !document.getElementById('errors').hidden"
        )
    )
    return drain_report(driver, url)
