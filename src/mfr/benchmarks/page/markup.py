"""The report's HTML: one self-contained page from the standard library (``html.escape``), no template
engine and nothing fetched (no script, font or stylesheet from elsewhere; plots are inline SVG, crops
inline JPEG).

Every string that came from data (names, paths, commands) goes through ``text``; ``markdown`` turns the
docs' Markdown tables (``doc_figures``, the same code that writes the docs) into HTML, escaping each cell
before it adds its own tags.
"""

from __future__ import annotations

import base64
import html
import re

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 1.5em 3em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.plot { margin: 1em 0; } .plot svg { max-width: 100%; height: auto; }
.crops { display: flex; flex-wrap: wrap; gap: 0.8em; } .crops figure { margin: 0; text-align: center; font-size: 12px; }
.crops img { width: 112px; height: 112px; object-fit: cover; border: 1px solid #ccc; }
.note { color: #666; font-size: 12.5px; } code { font-size: 12px; background: #f4f4f4; padding: 0 0.2em; }
nav a { margin-right: 1em; }
"""


def text(value: object) -> str:
    """Any value from data, as HTML text (``<script>`` in a name shows as those characters)."""
    return html.escape(str(value), quote=True)


def _inline(markdown_text: str) -> str:
    escaped = text(markdown_text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)


def markdown(source: str) -> str:
    """The Markdown the figure renderers write (tables, paragraphs, "- " lists, `code`, **bold**) as HTML."""
    out: list[str] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([cell.strip() for cell in lines[i].strip().strip("|").split("|")])
                i += 1
            header, body = rows[0], [r for r in rows[1:] if not all(set(c) <= set("-:") for c in r)]
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr>" + "".join(
                "<tr>" + "".join(f'<td{_numeric(c)}>{_inline(c)}</td>' for c in row) + "</tr>" for row in body)
                + "</table>")
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append(f'<ul class="note">{"".join(items)}</ul>')
            continue
        if line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def _numeric(cell: str) -> str:
    return ' class="n"' if re.fullmatch(r"[-+]?[\d.,]+( ?(%|ms|s|pp|x))?( ± [\d.]+)?", cell) else ""


def plot(svg: str, caption: str) -> str:
    return f'<figure class="plot">{svg}<figcaption class="note">{text(caption)}</figcaption></figure>'


def jpeg(data: bytes, caption: str) -> str:
    encoded = base64.b64encode(data).decode()
    return (f'<figure><img alt="{text(caption)}" src="data:image/jpeg;base64,{encoded}">'
            f"<figcaption>{text(caption)}</figcaption></figure>")


def page(title: str, sections: list[tuple[str, str, str]], footer: str) -> str:
    """The whole document: ``sections`` are (id, heading, HTML body)."""
    nav = "".join(f'<a href="#{section_id}">{text(heading)}</a>' for section_id, heading, _ in sections)
    body = "".join(f'<section id="{section_id}"><h2>{text(heading)}</h2>{content}</section>'
                   for section_id, heading, content in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{text(title)}</title>'
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            f"style-src 'unsafe-inline'\"><style>{STYLE}</style></head><body><h1>{text(title)}</h1>"
            f"<nav>{nav}</nav>{body}<footer class=\"note\">{footer}</footer></body></html>")
