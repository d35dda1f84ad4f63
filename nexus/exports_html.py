"""One self-contained HTML page of a report: summary by control and severity, the findings, and the last fleet
audits' counts by severity as an inline SVG chart (``nexus audit result ID --format html``).

Self-contained: inline CSS, inline SVG, no script, no external asset (it opens from a mail attachment or an
evidence folder with no network). Every value is HTML-escaped: subjects and values come from the audited systems.
The numbers a reader (or a test) needs carry ``data-`` attributes: ``data-severity``/``data-count`` on the summary
cells, ``data-audit``/``data-severity``/``data-count`` on the chart's bars.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from nexus.controls import CONTROL_TITLES
from nexus.exports import discrepancies_of, text_of

SEVERITIES = ("critical", "high", "medium", "low")
_COLOURS = {"critical": "#b3261e", "high": "#e8710a", "medium": "#f2c94c", "low": "#7aa6c2"}
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1b1b1b}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.num{text-align:right}.sev{display:inline-block;width:.8em;height:.8em;margin-right:.3em}
"""


def _e(value: Any) -> str:
    return escape(text_of(value), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, css_class: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: Any, *, num: bool = False, data: Mapping[str, Any] | None = None) -> str:
    attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in (data or {}).items())
    return f'<td{" class=num" if num else ""}{attrs}>{_e(value)}</td>'


def _summary(report: Mapping[str, Any]) -> str:
    summary = report.get("summary") or {}
    by_severity = summary.get("by_severity") or {}
    severity = _table(("Severity", "Findings"), (
        (f'<td><span class="sev" style="background:{_COLOURS[s]}"></span>{s}</td>',
         _td(by_severity.get(s, 0), num=True, data={"severity": s, "count": by_severity.get(s, 0)}))
        for s in SEVERITIES), css_class="by-severity")
    by_control = summary.get("by_control") or {}
    control = _table(("Control", "Title", "Findings"), (
        (_td(c), _td(CONTROL_TITLES.get(c, "")), _td(n, num=True, data={"control": c, "count": n}))
        for c, n in by_control.items()), css_class="by-control")
    return severity + control


def _findings(report: Mapping[str, Any]) -> str:
    counted = discrepancies_of(report)
    if not counted:
        return "<p>No discrepancies.</p>"
    header = ("Severity", "Control", "Subject", "Finding", "System A", "Value A", "System B", "Value B", "Remediation")
    return _table(header, (
        (_td(d.get("severity")), _td(d.get("control")), _td(d.get("subject")), _td(d.get("field")),
         _td(d.get("system_a")), _td(d.get("value_a")), _td(d.get("system_b")), _td(d.get("value_b")),
         _td(d.get("remediation")))
        for d in counted), css_class="findings")


def trend_svg(trend: Sequence[Mapping[str, Any]], *, width: int = 720, height: int = 240) -> str:
    """Stacked bars, one per fleet audit (oldest left), one segment per severity, each labelled with its total."""
    if not trend:
        return "<p>No fleet audit recorded yet: no trend.</p>"
    top = max(1, max(sum((t.get("by_severity") or {}).values()) for t in trend))
    pad, label_h = 30, 40
    plot_h = height - label_h - pad
    slot = (width - 2 * pad) / len(trend)
    bar_w = max(4.0, slot * 0.6)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="findings by severity, last fleet audits">']
    for i, point in enumerate(trend):
        counts = point.get("by_severity") or {}
        x = pad + i * slot + (slot - bar_w) / 2
        y = pad + plot_h
        audit = _e(point.get("audit_id"))
        for severity in reversed(SEVERITIES):  # low at the bottom, critical on top
            n = int(counts.get(severity, 0))
            h = plot_h * n / top
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{_COLOURS[severity]}" data-audit="{audit}" data-severity="{severity}" '
                         f'data-count="{n}"><title>{severity}: {n}</title></rect>')
        total = sum(int(v) for v in counts.values())
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="11" '
                     f'class="total" data-audit="{audit}">{total}</text>')
        when = _e(str(point.get("recorded_at") or "")[:10])
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - label_h / 2:.1f}" text-anchor="middle" '
                     f'font-size="10">{when}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: Mapping[str, Any], trend: Sequence[Mapping[str, Any]] = ()) -> str:
    subject = report.get("email") or report.get("serial") or report.get("kind") or "audit"
    failed = report.get("systems_failed") or []
    status = (f"<p class=degraded>Systems not read: {_e(', '.join(failed))}</p>" if failed
              else "<p>Every system was read.</p>")
    policy = report.get("policy") or {}
    return "".join((
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Nexus drift report: {_e(subject)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Nexus drift report: {_e(subject)}</h1>",
        f"<p>Audit <code>{_e(report.get('audit_id'))}</code> ({_e(report.get('kind'))}), generated "
        f"{_e(report.get('generated_at'))}; findings policy <code>{_e(policy.get('hash'))}</code>.</p>",
        status,
        f'<p>Discrepancies (counted): <strong class="total-count">{len(discrepancies_of(report))}</strong></p>',
        "<h2>Summary by severity and control</h2>", _summary(report),
        "<h2>Last fleet audits</h2>", trend_svg(trend),
        "<h2>Findings</h2>", _findings(report),
        "</body></html>\n",
    ))


__all__ = ["to_html", "trend_svg"]
