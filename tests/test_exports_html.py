"""`--format html`: one self-contained page (nexus.exports_html) with the summary by severity and control, the
findings and the last fleet audits' trend; read back in a real headless chromium (a screenshot is taken and the
page's numbers are read from the rendered DOM)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from nexus.drift.engine import summarize
from nexus.exports_html import to_html
from nexus.history import HistoryStore
from nexus.testing.browser import headless_chrome, missing_browser

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def _finding(subject: str, field: str, severity: str, a: str = "Workday", b: str = "ActiveDirectory") -> dict[str, Any]:
    from nexus.models import Discrepancy

    return Discrepancy(field, a, "x", b, "y", severity, subject=subject).to_dict()


def _report(findings: list[dict[str, Any]]) -> dict[str, Any]:
    return {"audit_id": "f" * 32, "kind": "fleet", "generated_at": NOW.isoformat(), "systems_failed": [],
            "discrepancies": findings, "discrepancy_count": len(findings), "summary": summarize(findings),
            "policy": {"hash": "0123456789abcdef", "default": True, "changed": {}}}


FINDINGS = [
    _finding("ann@corp.example", "account_enabled", "critical"),
    _finding("bob@corp.example", "department", "high"),
    _finding("<script>alert(1)</script>@corp.example", "job_title", "medium"),
    _finding("5CG1234XYZ", "unmanaged_device", "high", "Lansweeper", "Intune"),
]


def _history() -> tuple[HistoryStore, list[dict[str, Any]]]:
    store = HistoryStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), ttl_s=3600)
    store.annotate_full("a1", FINDINGS[:1], NOW - timedelta(days=14))
    store.annotate_full("a2", FINDINGS[:3], NOW - timedelta(days=7))
    store.annotate_full("a3", FINDINGS, NOW)
    return store, store.trend()


def test_the_trend_counts_what_each_fleet_audit_observed_oldest_first() -> None:
    store, trend = _history()
    assert [t["audit_id"] for t in trend] == ["a1", "a2", "a3"]
    assert [sum(t["by_severity"].values()) for t in trend] == [1, 3, 4]
    assert trend[-1]["by_severity"] == {"critical": 1, "high": 2, "medium": 1, "low": 0}
    assert [t["audit_id"] for t in store.trend(2)] == ["a2", "a3"]
    assert [t["audit_id"] for t in store.trend(until="a2")] == ["a1", "a2"]


def test_the_page_is_self_contained_and_escapes_what_the_systems_wrote() -> None:
    page = to_html(_report(FINDINGS), _history()[1])
    assert "<script" not in page  # the hostile subject is text, and the page runs nothing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@corp.example" in page
    external = [u for u in re.findall(r'(?:src|href)="([^"]+)"', page)]
    assert external == []  # no asset from anywhere
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]  # the SVG namespace only
    assert 'data-control="CIS 6.2"' in page and "Establish an Access Revoking Process" in page


@pytest.mark.integration
def test_a_headless_browser_renders_the_numbers_of_the_report(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    missing = missing_browser()
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
                    "(scripts/test-prerequisites.sh does it)")
    report = _report(FINDINGS)
    _, trend = _history()
    page = tmp_path / "report.html"
    page.write_text(to_html(report, trend), encoding="utf-8")
    driver = headless_chrome(tmp_path / "profile")
    try:
        driver.get(page.as_uri())
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        assert driver.title == "Nexus drift report: fleet"
        assert driver.find_element(By.CSS_SELECTOR, ".total-count").text == "4"
        shown = {c.get_attribute("data-severity"): int(c.text)
                 for c in driver.find_elements(By.CSS_SELECTOR, "table.by-severity td[data-severity]")}
        assert shown == report["summary"]["by_severity"]
        controls = {c.get_attribute("data-control"): int(c.text)
                    for c in driver.find_elements(By.CSS_SELECTOR, "table.by-control td[data-control]")}
        assert controls == report["summary"]["by_control"]
        rows = driver.find_elements(By.CSS_SELECTOR, "table.findings tbody tr")
        assert (len(rows) == 4 and "<script>alert(1)</script>@corp.example" in rows[-1].text) or any(
            "<script>alert(1)</script>" in r.text for r in rows)
        totals = [int(t.text) for t in driver.find_elements(By.CSS_SELECTOR, "svg.trend text.total")]
        assert totals == [1, 3, 4]
        bars = driver.find_elements(By.CSS_SELECTOR, "svg.trend rect[data-audit='a3']")
        assert {b.get_attribute("data-severity"): int(b.get_attribute("data-count")) for b in bars} == \
            trend[-1]["by_severity"]
        heights = {b.get_attribute("data-severity"): b.rect["height"] for b in bars}
        assert heights["high"] > heights["critical"] > 0 and heights["low"] == 0  # drawn to scale
    finally:
        driver.quit()
