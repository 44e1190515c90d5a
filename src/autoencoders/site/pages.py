"""HTML of the results site: the index of cards and one page per experiment.

Every piece of text that comes from a run (names, descriptions, commands, table cells) is
escaped with :func:`html.escape`; the only markup is this module's. The numbers tables and
the provenance come from the run's ``report.md`` (:func:`report_sections`), so the site
shows the same generated values as the reports.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

STYLE = "assets/site.css"
SCRIPT = "assets/explorer.js"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """A parsed ``## <title>`` section of a report: tables and paragraphs, in order."""

    blocks: list[Table | str] = field(default_factory=list)


def report_sections(text: str) -> dict[str, Section]:
    """``report.md`` -> ``{section title: Section}``; bullets and paragraphs become text
    blocks, pipe tables become :class:`Table` (the ``|---|`` line dropped)."""
    out: dict[str, Section] = {}
    current: Section | None = None
    table: Table | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = out.setdefault(line[3:].strip(), Section())
            table = None
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if all(re.fullmatch(r":?-+:?", c) for c in cells):
                continue
            if table is None:
                table = Table(cells, [])
                current.blocks.append(table)
            else:
                table.rows.append(cells)
            continue
        table = None
        if stripped and not stripped.startswith("!["):
            current.blocks.append(stripped)
    return out


_INLINE = re.compile(r"`([^`]*)`|\*\*([^*]+)\*\*|\[([^\]]*)\]\([^)]*\)")


def inline(text: str) -> str:
    """Markdown inline subset -> escaped HTML: `code`, **bold**, [text](link) -> text
    (a report's links point into run folders, which the site does not copy)."""
    out, at = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[at:m.start()]))
        code, bold, link = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{html.escape(bold)}</strong>")
        else:
            out.append(html.escape(link))
        at = m.end()
    out.append(html.escape(text[at:]))
    return "".join(out)


def table_html(table: Table, max_rows: int | None = None, max_cols: int | None = None) -> str:
    cols = slice(0, max_cols)
    head = "".join(f"<th>{inline(c)}</th>" for c in table.header[cols])
    rows = table.rows[:max_rows] if max_rows else table.rows
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r[cols]) + "</tr>"
                   for r in rows)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def section_html(section: Section | None) -> str:
    if section is None:
        return "<p>(not in the report)</p>"
    parts, items = [], []
    for block in section.blocks:
        if isinstance(block, str) and block.startswith("- "):
            items.append(f"<li>{inline(block[2:])}</li>")
            continue
        if items:
            parts.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if isinstance(block, Table):
            parts.append(f'<div class="table-wrap">{table_html(block)}</div>')
        else:
            parts.append(f"<p>{inline(block.lstrip('- '))}</p>")
    if items:
        parts.append("<ul>" + "".join(items) + "</ul>")
    return "\n".join(parts)


def document(title: str, body: str, root: str = "", scripts: list[str] | None = None) -> str:
    """A whole HTML page; ``root`` is the relative path back to the site's top folder."""
    tags = "".join(f'<script src="{html.escape(root + s)}"></script>\n'
                   for s in (scripts or []))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n"  # no favicon request (a 404 on servers)
        f"<title>{html.escape(title)}</title>\n"
        f'<link rel="stylesheet" href="{html.escape(root + STYLE)}">\n</head>\n<body>\n'
        f'<header><a href="{html.escape(root)}index.html">autoencoders · results</a></header>\n'
        f"<main>\n{body}\n</main>\n{tags}</body>\n</html>\n"
    )


@dataclass
class Figure:
    src: str  # relative to the page
    name: str
    caption: str


@dataclass
class Explorer:
    data_id: str
    title: str
    kind: str | None
    note: str = ""


@dataclass
class Page:
    """One experiment's page (a run, or a sweep with its runs)."""

    slug: str
    name: str
    paper: str
    profile: str
    description: str
    sections: dict[str, Section]
    figures: list[Figure]
    explorers: list[Explorer]
    thumbnail: str | None = None

    @property
    def href(self) -> str:
        return f"{self.slug}/index.html"


EXPLAIN = {
    "plane": "Live decoder: the pointer picks a point z of the 2-D latent space and this page "
             "decodes it with the model's own weights (a JavaScript forward pass).",
    "sliders": "Live decoder: each slider sets one latent; the image is decoded in your "
               "browser with the model's own weights.",
    "frames": "This decoder is convolutional, too large, or over this page's budget for "
              "decoder weights, so it does not run in the browser: these frames were decoded "
              "beforehand from the first test image's code, one "
              "latent moved over [-3, 3] at a time. Moving a slider shows that latent's frame; "
              "the other latents return to the seed image's code.",
}


def experiment_page(page: Page) -> str:
    e = html.escape
    body = [f"<h1>{e(page.name)}</h1>",
            f'<p class="paper">{e(page.paper)} · profile <code>{e(page.profile)}</code></p>']
    if page.description:
        body.append(f'<p class="description">{e(page.description)}</p>')
    body += ["<h2>Numbers: ours beside the paper's</h2>",
             section_html(page.sections.get("Numbers"))]
    if page.explorers:
        body.append("<h2>Explore the latent space</h2>")
        for ex in page.explorers:
            body.append(f'<section class="explorer-box"><h3>{e(ex.title)}</h3>')
            if ex.kind is None:
                body.append(f'<p class="note">{e(ex.note)}</p></section>')
                continue
            body.append(f'<p class="note">{e(EXPLAIN[ex.kind])}</p>')
            if ex.note:
                body.append(f'<p class="note">{e(ex.note)}</p>')
            body.append(f'<div class="explorer" data-explorer="{e(ex.data_id)}"></div></section>')
    if page.figures:
        body.append("<h2>Figures</h2>")
        for f in page.figures:
            body.append(f'<figure><a href="{e(f.src)}"><img src="{e(f.src)}" alt="{e(f.name)}" '
                        f'loading="lazy"></a><figcaption><strong>{e(f.name)}</strong>'
                        f'{": " + e(f.caption) if f.caption else ""}</figcaption></figure>')
    if "Training" in page.sections:
        body += ["<h2>Training</h2>", section_html(page.sections["Training"])]
    body += ["<h2>Provenance</h2>", section_html(page.sections.get("Provenance"))]
    scripts = [SCRIPT] + [f"data/{ex.data_id}.js" for ex in page.explorers if ex.kind]
    return document(f"{page.name} · autoencoders", "\n".join(body), root="../",
                    scripts=scripts if page.explorers else None)


def headline(table: Table, n: int = 3) -> Table:
    """A card's rows of a report's numbers table: those with a paper value first (the
    third column of a run's table), then the others in the report's order, ``n`` in all."""
    def has_paper(row: list[str]) -> bool:
        return len(row) > 2 and row[2].strip() not in ("", "—")

    rows = [r for r in table.rows if has_paper(r)] + [r for r in table.rows if not has_paper(r)]
    return Table(table.header, rows[:n])


def index_page(pages: list[Page]) -> str:
    e = html.escape
    body = ["<h1>Classic autoencoders, reproduced</h1>",
            '<p class="lead">One card per paper: each experiment with our number beside the '
            "paper's (the same values as its report), and a page with every figure, the "
            "provenance and, for the VAEs, a latent space to play with.</p>"]
    papers: dict[str, list[Page]] = {}
    for p in pages:
        papers.setdefault(p.paper or "other", []).append(p)
    body.append('<div class="cards">')
    for paper, group in papers.items():
        body.append(f'<article class="card"><h2>{e(paper)}</h2>')
        for p in group:
            body.append(f'<div class="exp"><h3><a href="{e(p.href)}">{e(p.name)}</a>'
                        + (' <span class="badge">explore</span>'
                           if any(x.kind for x in p.explorers) else "") + "</h3>")
            if p.thumbnail:
                body.append(f'<a href="{e(p.href)}"><img class="thumb" src="{e(p.thumbnail)}" '
                            f'alt="{e(p.name)} figure"></a>')
            table = next((b for b in (p.sections.get("Numbers") or Section()).blocks
                          if isinstance(b, Table)), None)
            if table is not None:
                body.append(table_html(headline(table), max_cols=3))
            body.append("</div>")
        body.append("</article>")
    body.append("</div>")
    return document("autoencoders · results", "\n".join(body))
