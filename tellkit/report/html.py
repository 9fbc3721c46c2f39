"""Markdown report -> one self-contained HTML page.

The HTML must survive being emailed or attached to a ticket on its own, so
images are inlined as base64 data URIs and the CSS is embedded: the page loads
no external resources.
"""

from __future__ import annotations

import base64
import html
import math
import mimetypes
import numbers
import re
from pathlib import Path
from urllib.parse import unquote

import markdown

from tellkit.io import write_text_atomic

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 980px; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
h1, h2, h3 { line-height: 1.25; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .92rem; }
th, td { border: 1px solid #bbb; padding: .3rem .6rem; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fafafa; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
            font-size: .9em; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; border-radius: 4px; }
img { max-width: 100%; height: auto; }
""".strip()

_IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]*)(")', re.IGNORECASE)


def _inline_images(body: str, base_dir: Path) -> str:
    def to_data_uri(match: re.Match[str]) -> str:
        src = html.unescape(match.group(2))
        if src.startswith("data:"):
            return match.group(0)
        # Anything else must be a local file: a remote URL would make the page
        # depend on the network, so it fails here like a missing file would.
        file = base_dir / unquote(src)
        if not file.is_file():
            raise FileNotFoundError(f"report image {src!r} not found under {base_dir}")
        mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        data = base64.b64encode(file.read_bytes()).decode("ascii")
        return f"{match.group(1)}data:{mime};base64,{data}{match.group(3)}"

    return _IMG_SRC.sub(to_data_uri, body)


def markdown_to_html(md_text: str, base_dir: Path, title: str) -> str:
    """Render `md_text` as a standalone HTML page, inlining images from `base_dir`."""
    body = markdown.markdown(md_text, extensions=["tables", "fenced_code"])
    body = _inline_images(body, Path(base_dir))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(
    md_text: str, out_dir: Path, stem: str = "report", title: str = "tellkit report"
) -> tuple[Path, Path]:
    """Write `<stem>.md` and `<stem>.html` into `out_dir`; returns both paths."""
    out_dir = Path(out_dir)
    # Render first so a missing image fails before anything is written.
    page = markdown_to_html(md_text, out_dir, title)
    md_path = write_text_atomic(out_dir / f"{stem}.md", md_text)
    html_path = write_text_atomic(out_dir / f"{stem}.html", page)
    return md_path, html_path


def _is_number(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _cell(v: object, floatfmt: str) -> str:
    if v is None or (_is_number(v) and math.isnan(float(v))):
        return "–"
    if _is_number(v) and not isinstance(v, numbers.Integral):
        return floatfmt.format(float(v))
    # A raw "|" would split the cell and a newline would end the table.
    return str(v).replace("|", r"\|").replace("\n", " ")


def md_table(headers: list[str], rows: list[list], floatfmt: str = "{:.3f}") -> str:
    """Markdown pipe table; floats use `floatfmt`, NaN/None render as "–".

    Columns whose values are all numeric (or missing) are right-aligned so
    digits line up.
    """
    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {i} has {len(row)} cells but there are {len(headers)} headers")
    numeric = [
        bool(rows) and all(r[j] is None or _is_number(r[j]) for r in rows)
        for j in range(len(headers))
    ]
    lines = [
        "| " + " | ".join(_cell(h, floatfmt) for h in headers) + " |",
        "|" + "|".join("---:" if num else "---" for num in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v, floatfmt) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt_ci(s: dict | None) -> str:
    """A summary score as "mean [low, high]" ("–" when missing; the mean alone when no interval)."""
    if not s or s.get("mean") is None or math.isnan(s["mean"]):
        return "–"
    if math.isnan(s.get("ci_low", math.nan)):
        return f"{s['mean']:.3f}"
    return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def shorten(text: str, n: int = 160) -> str:
    """One line of at most n characters, for sample tables."""
    text = " ".join(str(text).split()).replace("`", "'")
    return text if len(text) <= n else text[: n - 1] + "…"
