"""HTML building blocks of the report: one self-contained page, every picture and sound inlined
as a base64 data URI, no script or style from elsewhere (it opens offline, from a mail or a
bucket, years later)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from typing import Any

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #1d2b33; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #2a9d8f;
     padding-bottom: 0.2em; margin-top: 2em; } h3 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f4f5; } img { max-width: 100%; display: block; margin: 0.5em 0; }
.muted { color: #6b7b85; } .warn { color: #b3261e; font-weight: 600; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; }
audio { width: 260px; height: 32px; } nav a { margin-right: 1em; }
"""


def text(value: Any) -> str:
    return escape(str(value))


def png(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode()
    return f'<img alt="{text(alt)}" src="data:image/png;base64,{encoded}">'


def wav(data: bytes, label: str) -> str:
    encoded = base64.b64encode(data).decode()
    return (f'<audio controls preload="metadata" aria-label="{text(label)}" '
            f'src="data:audio/wav;base64,{encoded}"></audio>')


def number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return text(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
    """Numbers right-aligned with thousands separators; everything else escaped."""
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if (isinstance(cell, (int, float)) and not isinstance(cell, bool)) or cell is None:
                cells.append(f'<td class="num">{number(cell, digits)}</td>')
            else:
                cells.append(f"<td>{text(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{text(anchor)}"><h2>{text(title)}</h2>\n{body}\n</section>'


def note(message: str, css: str = "muted") -> str:
    return f'<p class="{css}">{text(message)}</p>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document; `sections` are (anchor, title, body HTML)."""
    nav = " ".join(f'<a href="#{text(a)}">{text(t)}</a>' for a, t, _ in sections)
    parts = "\n".join(section(a, t, b) for a, t, b in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{text(title)}</title><style>{STYLE}</style></head>\n<body>"
            f"<h1>{text(title)}</h1><p class=\"muted\">{text(subtitle)}</p><nav>{nav}</nav>\n"
            f"{parts}\n</body></html>\n")
