"""The report's document and its two renderings: one HTML page and a Markdown summary.

A report is a list of `(source, [Section])` groups; a `Section` holds a heading, an
explanation, charts (PNG files), `Table`s and findings. The HTML page marks, once
loaded in a browser, how many of its images decoded (`<body data-images-loaded=...>`),
which the headless-Chromium check reads (`tfcondense.bench.browser`).
"""
from __future__ import annotations

import dataclasses
import html
import os
from typing import List, Tuple


@dataclasses.dataclass
class Table:
  """A table rendered both to HTML and to Markdown."""

  header: List[str]
  rows: List[List[str]]
  caption: str = ""
  highlight_first: bool = False

  def markdown(self) -> str:
    lines = []
    if self.caption:
      lines += [f"*{self.caption}*", ""]
    lines.append("| " + " | ".join(self.header) + " |")
    lines.append("|" + "---|" * len(self.header))
    for i, row in enumerate(self.rows):
      cells = [f"**{c}**" if self.highlight_first and i == 0 and c else c for c in row]
      lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

  def html(self) -> str:
    out = ["<table>"]
    if self.caption:
      out.append(f"<caption>{html.escape(self.caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in self.header) + "</tr>")
    for i, row in enumerate(self.rows):
      cls = ' class="top"' if self.highlight_first and i == 0 else ""
      out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


@dataclasses.dataclass
class Section:
  """One block of the report: heading, explanation, charts, tables, findings."""

  anchor: str
  title: str
  intro: str = ""
  images: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, alt)
  tables: List[Table] = dataclasses.field(default_factory=list)
  findings: List[str] = dataclasses.field(default_factory=list)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { margin-top: 0; } h2 { border-bottom: 2px solid #4c72b0; padding-bottom: 4px;
     margin-top: 40px; }
h3 { margin-top: 28px; color: #333; }
p.meta, p.intro { color: #555; max-width: 960px; line-height: 1.45; }
nav a { margin-right: 14px; }
img { max-width: 100%; height: auto; display: block; margin: 12px 0;
      border: 1px solid #eee; }
table { border-collapse: collapse; margin: 10px 0 18px; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f3f8; } td:first-child, th:first-child { text-align: left; }
tr.top td { background: #eef6ee; font-weight: 600; }
ul.findings { background: #f7f7fb; border-left: 4px solid #8172b3; padding: 8px 8px 8px 28px;
              max-width: 940px; }
"""

_SCRIPT = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute("data-images-total", String(imgs.length));
  document.body.setAttribute("data-images-loaded", String(imgs.filter(function (i) {
    return i.complete && i.naturalWidth > 0; }).length));
});
</script>"""


def render_html(title: str, meta: str, groups: List[Tuple[str, List[Section]]],
                out: str) -> str:
  """The report as one HTML page; image paths relative to `out`."""
  parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>",
           f"<h1>{html.escape(title)}</h1>", f'<p class="meta">{html.escape(meta)}</p>']
  parts.append("<nav>" + "".join(
      f'<a href="#{html.escape(s.anchor)}">{html.escape(src)}: {html.escape(s.title)}</a>'
      for src, secs in groups for s in secs) + "</nav>")
  for src, secs in groups:
    parts.append(f'<h2 id="{html.escape(src)}">{html.escape(src)}</h2>')
    for s in secs:
      parts.append(f'<h3 id="{html.escape(s.anchor)}">{html.escape(s.title)}</h3>')
      if s.intro:
        parts.append(f'<p class="intro">{html.escape(s.intro)}</p>')
      for path, alt in s.images:
        parts.append(f'<img src="{html.escape(os.path.relpath(path, out))}" '
                     f'alt="{html.escape(alt)}">')
      for t in s.tables:
        parts.append(t.html())
      if s.findings:
        parts.append('<ul class="findings">' + "".join(
            f"<li>{html.escape(f)}</li>" for f in s.findings) + "</ul>")
  parts += ["</main>", _SCRIPT, "</body></html>"]
  return "\n".join(parts)


def render_markdown(title: str, meta: str, groups: List[Tuple[str, List[Section]]],
                    out: str) -> str:
  """The report as Markdown (the same tables); image paths relative to `out`."""
  lines = [f"# {title}", "", meta, ""]
  for src, secs in groups:
    lines += [f"## {src}", ""]
    for s in secs:
      lines += [f"### {s.title}", ""]
      if s.intro:
        lines += [s.intro, ""]
      for path, alt in s.images:
        lines += [f"![{alt}]({os.path.relpath(path, out)})", ""]
      for t in s.tables:
        lines += [t.markdown(), ""]
      lines += [f"- {f}" for f in s.findings] + ([""] if s.findings else [])
  return "\n".join(lines)
