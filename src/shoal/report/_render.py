"""Report sections to a self-contained HTML page (SVG inline) and to Markdown."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from ._model import Section, Table

__all__ = ["PLOTS_DIR", "to_html", "to_markdown"]

PLOTS_DIR = "report-plots"

_CSS = """
body { margin: 0 auto; max-width: 1100px; padding: 24px; font: 14px/1.5 system-ui, -apple-system, "Segoe UI",
  sans-serif; color: #1d2329; }
h1 { font-size: 22px; margin-bottom: 0; }
h2 { font-size: 17px; margin-top: 36px; border-bottom: 1px solid #e3e6ea; }
.meta { color: #6a737d; margin-top: 4px; }
table { border-collapse: collapse; margin: 10px 0 4px; font-size: 13px; }
th, td { border: 1px solid #e3e6ea; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #6a737d; font-size: 12px; margin: 0 0 10px; }
figure { margin: 14px 0; } svg { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
code { background: #f3f5f7; padding: 0 3px; border-radius: 3px; }
"""


def _inline(text: str) -> str:
    """Escape, and turn `code` spans into <code>."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(f"<code>{escape(p)}</code>" if i % 2 else escape(p) for i, p in enumerate(parts))


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    rows = []
    for row in table.rows:
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if i in table.numeric else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        rows.append(f"<tr>{cells}</tr>")
    note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"


def to_html(title: str, meta: str, sections: Sequence[Section]) -> str:
    body = [f"<h1>{escape(title)}</h1>", f'<p class="meta">{_inline(meta)}</p>']
    for section in sections:
        body.append(f"<h2>{escape(section.title)}</h2>")
        body += [f"<p>{_inline(p)}</p>" for p in section.paragraphs]
        body += [f'<figure aria-label="{escape(c.title)}">{c.svg}</figure>' for c in section.charts]
        body += [_html_table(t) for t in section.tables]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    lines = [
        "| " + " | ".join(_md_cell(h) for h in table.headers) + " |",
        "|" + "|".join("---:" if i in table.numeric else "---" for i in range(len(table.headers))) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"_{table.note}_"]
    return [*lines, ""]


def to_markdown(title: str, meta: str, sections: Sequence[Section]) -> str:
    lines = [f"# {title}", "", meta, ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        for chart in section.charts:
            lines += [f"![{chart.title}]({PLOTS_DIR}/{chart.name}.svg)", ""]
        for table in section.tables:
            lines += _md_table(table)
    return "\n".join(lines).rstrip() + "\n"
