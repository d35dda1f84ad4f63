"""Debian's headless chromium driven by Selenium, for tests that look at a page as a reader does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing_browser() -> list[str]:
    """The binaries that are not installed (scripts/test-prerequisites.sh installs them)."""
    return [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) and os.access(p, os.X_OK))]


def headless_chrome(user_data_dir: Path, *, window: str = "1400,1000") -> Any:
    """A headless Chrome WebDriver that never downloads anything (Selenium Manager off, no background network)."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={window}", f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


__all__ = ["CHROMEDRIVER", "CHROMIUM", "headless_chrome", "missing_browser"]
