"""Rendering of the report: the blocks the report's sections produce (headings, paragraphs,
tables, figures) and the two renderers that turn one list of blocks into report.html (every image
an embedded base64 PNG shown at half its pixel size, so sharp on high-DPI screens; inline CSS and
one inline script that sorts the tables marked sortable; nothing from the network) and report.md
(images as files).

Inline markup in every text: **bold**, `code` and [text](relative link).
"""
from __future__ import annotations

import base64
import html
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

FILES_DIR = "report_files"  # the PNGs of report.md, next to it


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ------------------------------------------------------------------------------------------
# blocks: what the sections produce and the renderers consume
# ------------------------------------------------------------------------------------------

@dataclass
class Heading:
    """A section (level 2, listed in the table of contents) or sub-section (level 3) heading."""

    level: int
    text: str
    anchor: str = ""


@dataclass
class Para:
    """A paragraph; **bold** and `code` are the only inline markup."""

    text: str


@dataclass
class Bullets:
    """A bulleted list of short paragraphs (same inline markup as Para)."""

    items: list[str]


@dataclass
class Table:
    """A table of preformatted cells; `numeric` holds the indexes of right-aligned columns;
    sortable: its columns sort on a click in report.html."""

    columns: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)
    caption: str = ""
    sortable: bool = False


@dataclass
class Figure:
    """A PNG in report_files/ (`name`) with its caption."""

    name: str
    caption: str = ""


@dataclass
class Gallery:
    """Figures shown side by side (image grids)."""

    figures: list[Figure]


@dataclass
class Details:
    """Blocks folded away under a one-line summary (long tables)."""

    summary: str
    blocks: list


# ------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1340px; margin: 0 auto; padding: 1.2em 1.6em 4em; color: #1d2330; line-height: 1.5;
       background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; overflow-wrap: anywhere; }
h2 { font-size: 1.35em; margin-top: 2.2em; padding-bottom: 0.2em; border-bottom: 2px solid #dde3ec; }
h3 { font-size: 1.1em; margin-top: 1.6em; color: #2b3a55; }
p, li, figcaption, summary { overflow-wrap: anywhere; }
p { margin: 0.6em 0; }
code { background: #f1f3f7; padding: 0 0.25em; border-radius: 3px; font-size: 0.92em; }
a { color: #1f5fbf; }
nav.toc { background: #f6f8fb; border: 1px solid #e1e6ee; border-radius: 6px; padding: 0.6em 1.2em;
          display: inline-block; max-width: 100%; box-sizing: border-box; margin: 0.8em 0; }
nav.toc ol { margin: 0.3em 0; padding-left: 1.4em; }
.table-wrap { overflow-x: auto; max-width: 100%; margin: 0 0 1.2em; }
table { border-collapse: separate; border-spacing: 0; font-size: 0.84em; }
p.caption { color: #4a5568; font-size: 0.8em; margin: 0.8em 0 0.3em; }
td.long { min-width: 16em; }
th, td { border-right: 1px solid #dde3ec; border-bottom: 1px solid #dde3ec; padding: 0.25em 0.5em;
         vertical-align: top; background: #fff; }
tr > :first-child { border-left: 1px solid #dde3ec; position: sticky; left: 0; z-index: 1; white-space: nowrap; }
thead th { border-top: 1px solid #dde3ec; }
th { background: #f1f4f9; font-weight: 600; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfd; }
table.sortable { font-size: 0.78em; }
table.sortable th { cursor: pointer; }
table.sortable th, table.sortable td { padding: 0.2em 0.45em; }
table.sortable th[aria-sort="ascending"]::after { content: " ▲"; }
table.sortable th[aria-sort="descending"]::after { content: " ▼"; }
figure { margin: 1em 0 1.4em; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 0.85em; color: #4a5568; margin-top: 0.3em; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 420px), 1fr)); gap: 0.8em 1.2em; }
.gallery figure { margin: 0; }
details { margin: 0.8em 0; }
summary { cursor: pointer; color: #2b4b80; }
.partial { background: #fff6e0; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
@media (max-width: 640px) { body { padding: 0.8em 0.8em 3em; } h1 { font-size: 1.35em; } }
"""

# Sorts a table.sortable by the clicked column: numbers (a leading number, − read as minus) by value,
# other cells as text; a second click reverses the order.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var up = th.getAttribute("aria-sort") !== "ascending";
      function key(row) {
        var text = row.cells[col] ? row.cells[col].textContent.trim() : "";
        var n = parseFloat(text.replace(/\u2212/g, "-").replace(/,/g, ""));
        return isNaN(n) ? text.toLowerCase() : n;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { return (typeof x === "number" ? -1 : 1) * (up ? 1 : -1); }
        return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });
});
"""


def _inline_html(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: f'<a href="{html.escape(m[2])}">{m[1]}</a>', out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels of PNG bytes, None when they are not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return struct.unpack(">II", data[16:24])


def _figure_html(f: Figure, files: Path) -> str:
    from ..figures import SCALE

    path = files / f.name
    if not path.is_file():
        return f"<p><em>missing figure {html.escape(f.name)}</em></p>"
    data = path.read_bytes()
    size = png_size(data)
    dims = f' width="{max(1, size[0] // SCALE)}" height="{max(1, size[1] // SCALE)}"' if size else ""
    alt = html.escape(f.caption or f.name)
    cap = f"<figcaption>{_inline_html(f.caption)}</figcaption>" if f.caption else ""
    return f'<figure><img src="{_data_uri(data)}"{dims} alt="{alt}">{cap}</figure>'


LONG_TEXT = 40  # characters: a text column with longer cells keeps a readable width when the table scrolls


def _table_html(t: Table) -> str:
    """A table in its own horizontally scrolling box, its caption above the box (so it does not
    scroll away); a text column of long cells keeps a minimum width."""
    long = {i for i in range(len(t.columns)) if i not in t.numeric and i > 0
            and max((len(row[i]) for row in t.rows if i < len(row)), default=0) > LONG_TEXT}

    def cls(i):
        return ' class="num"' if i in t.numeric else ' class="long"' if i in long else ""

    head = "".join(f"<th{cls(i)}>{_inline_html(c)}</th>" for i, c in enumerate(t.columns))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{_inline_html(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in t.rows)
    cap = f'<p class="caption">{_inline_html(t.caption)}</p>' if t.caption else ""
    sortable = ' class="sortable"' if t.sortable else ""
    return (f'{cap}<div class="table-wrap"><table{sortable}><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


def _blocks_html(blocks: list, files: Path) -> list[str]:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            anchor = f' id="{b.anchor}"' if b.anchor else ""
            out.append(f"<h{b.level}{anchor}>{_inline_html(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            partial = ' class="partial"' if b.text.startswith("**Partial results**") else ""
            out.append(f"<p{partial}>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            out.append(_table_html(b))
        elif isinstance(b, Figure):
            out.append(_figure_html(b, files))
        elif isinstance(b, Gallery):
            out.append('<div class="gallery">' + "".join(_figure_html(f, files) for f in b.figures) + "</div>")
        elif isinstance(b, Details):
            out.append(f"<details><summary>{_inline_html(b.summary)}</summary>"
                       + "".join(_blocks_html(b.blocks, files)) + "</details>")
    return out


def _toc(blocks: list) -> list[tuple[str, str]]:
    return [(b.text, b.anchor) for b in blocks if isinstance(b, Heading) and b.level == 2 and b.anchor]


def render_html(blocks: list, files: Path, title: str) -> str:
    """The report as one self-contained HTML page: inline CSS, every figure an embedded base64 PNG
    read from `files` (the report_files folder), a table of contents, and (when a table is
    sortable) one inline script that sorts it; nothing loaded from elsewhere."""
    toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for t, a in _toc(blocks))
    first_h2 = next((i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.level == 2), len(blocks))
    head = "\n".join(_blocks_html(blocks[:first_h2], files))
    rest = "\n".join(_blocks_html(blocks[first_h2:], files))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{head}\n"
            f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>\n{rest}\n'
            + (f"<script>{SORT_SCRIPT}</script>\n" if _has_sortable(blocks) else "") + "</body>\n</html>\n")


def _has_sortable(blocks: list) -> bool:
    return any((isinstance(b, Table) and b.sortable) or (isinstance(b, Details) and _has_sortable(b.blocks))
               for b in blocks)


def _table_md(t: Table) -> str:
    lines = []
    if t.caption:
        lines += [f"*{t.caption}*", ""]
    lines.append("| " + " | ".join(_md_escape(c) for c in t.columns) + " |")
    lines.append("|" + "|".join(" ---: " if i in t.numeric else " --- " for i in range(len(t.columns))) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def _blocks_md(blocks: list) -> list[str]:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {i}" for i in b.items))
        elif isinstance(b, Table):
            out.append(_table_md(b))
        elif isinstance(b, Figure):
            image = f"![{_md_escape(b.caption)}]({FILES_DIR}/{b.name})"
            out.append(image + (f"\n\n*{b.caption}*" if b.caption else ""))
        elif isinstance(b, Gallery):
            out += _blocks_md(b.figures)
        elif isinstance(b, Details):
            out.append(f"<details><summary>{html.escape(b.summary)}</summary>\n\n"
                       + "\n\n".join(_blocks_md(b.blocks)) + "\n\n</details>")
    return out


def render_md(blocks: list) -> str:
    """The report as Markdown: the same blocks, images referenced as files in report_files/."""
    toc = "\n".join(f"{i}. [{t}](#{a})" for i, (t, a) in enumerate(_toc(blocks), 1))
    first_h2 = next((i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.level == 2), len(blocks))
    parts = _blocks_md(blocks[:first_h2]) + ["**Contents**\n\n" + toc] + _blocks_md(blocks[first_h2:])
    return "\n\n".join(parts) + "\n"


def referenced(blocks: list) -> set[str]:
    names = set()
    for b in blocks:
        if isinstance(b, Figure):
            names.add(b.name)
        elif isinstance(b, Gallery):
            names |= {f.name for f in b.figures}
        elif isinstance(b, Details):
            names |= referenced(b.blocks)
    return names
