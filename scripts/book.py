"""Render the executed notebooks as a static HTML book (``make book``): read them without running
anything.

Every executed notebook is converted with nbconvert's ``HTMLExporter`` (JupyterLab's look; the
figures are the PNG outputs the notebooks carry, embedded inline, so each page is one file;
progress bars show their last state, as in JupyterLab):
the default profile's from ``notebooks/``, any other profile's from ``results/<profile>/notebooks/``
where ``make paper`` (or ``oneranker reproduce --profile ...``) wrote them. The pages go to
``book/<profile>/<notebook>.html``, with ``book/index.html`` listing each profile's notebooks by
their title (the notebook's first markdown heading); each page links back to the contents, to the
previous and next notebook, and to the same notebook under the other profiles.

    python scripts/book.py                 # writes book/ (make book)
    python scripts/book.py --out /tmp/b    # somewhere else

The pages load MathJax (formulas) from a CDN when online; offline the formulas show as TeX.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oneranker.reproduce import DEFAULT_PROFILE  # noqa: E402

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"   # the series, as oneranker.reproduce runs it
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)


@dataclass
class Page:
    profile: str
    source: Path
    title: str
    executed: str | None   # papermill's end time, where the notebook has one
    errors: int            # error outputs (a failed cell); make reproduce never commits one

    @property
    def href(self) -> str:
        """The page's path under the book's folder."""
        return f"{self.profile}/{self.source.stem}.html"


def find_notebooks(root: Path = ROOT) -> dict[str, list[Path]]:
    """The executed notebooks of each profile: the default profile's in notebooks/, then every
    profile that has results/<profile>/notebooks/ (paper first, the rest by name)."""
    books = {DEFAULT_PROFILE: sorted((root / "notebooks").glob(NOTEBOOK_GLOB))}
    others = sorted((d.parent.name for d in (root / "results").glob("*/notebooks") if d.is_dir()),
                    key=lambda p: (p != "paper", p))
    for profile in others:
        if profile != DEFAULT_PROFILE and (paths := sorted((root / "results" / profile / "notebooks").glob(NOTEBOOK_GLOB))):
            books[profile] = paths
    return {p: paths for p, paths in books.items() if paths}


def read(path: Path) -> nbformat.NotebookNode:
    with warnings.catch_warnings():      # the committed notebooks predate cell ids
        warnings.simplefilter("ignore")
        return nbformat.read(path, as_version=4)


def title_of(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first markdown heading of the notebook, without markdown emphasis or code marks."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (m := HEADING.search(cell.source)):
            return re.sub(r"[*_`]", "", m.group(1)).strip()
    return fallback


def error_outputs(nb: nbformat.NotebookNode) -> int:
    return sum(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


PROFILE_NOTES = {   # what each profile is (oneranker.config.PROFILES)
    "quick": "The default profile: every notebook runs in minutes on 2 CPU cores (make reproduce).",
    "paper": "The paper's dimensions, trained on a GPU (make paper).",
    "smoke": "A smoke test of the notebooks' code, not of the method: a toy market and model; its numbers mean nothing.",
}

STYLE = """<style>
.book-nav { font-family: system-ui, sans-serif; font-size: 14px; padding: 8px 16px; margin: 0 0 8px;
  background: #f3f4f6; border-bottom: 1px solid #d1d5db; display: flex; gap: 18px; flex-wrap: wrap; }
.book-nav.bottom { border-top: 1px solid #d1d5db; border-bottom: none; margin: 24px 0 0; }
.book-nav a { color: #1d4ed8; text-decoration: none; } .book-nav a:hover { text-decoration: underline; }
.book-nav .here { color: #374151; font-weight: 600; }
</style>"""


def nav(page: Page, pages: list[Page], siblings: dict[str, Page], where: str) -> str:
    """Contents, previous/next within the profile, and the same notebook under other profiles."""
    i = pages.index(page)
    links = ['<a href="../index.html">Contents</a>',
             f'<span class="here">{html.escape(page.profile)} profile</span>']
    if i > 0:
        links.append(f'<a href="../{pages[i - 1].href}">&larr; {html.escape(pages[i - 1].title)}</a>')
    if i + 1 < len(pages):
        links.append(f'<a href="../{pages[i + 1].href}">{html.escape(pages[i + 1].title)} &rarr;</a>')
    for profile, other in siblings.items():
        if profile != page.profile:
            links.append(f'<a href="../{other.href}">this notebook at the {html.escape(profile)} profile</a>')
    return f'<nav class="book-nav {where}">' + " ".join(links) + "</nav>"


def index_html(books: dict[str, list[Page]]) -> str:
    sections = []
    for profile, pages in books.items():
        folder = "notebooks/" if profile == DEFAULT_PROFILE else f"results/{profile}/notebooks/"
        note = PROFILE_NOTES.get(profile, "")
        items = []
        for p in pages:
            when = f' <span class="when">executed {html.escape(p.executed[:10])}</span>' if p.executed else ""
            items.append(f'<li><a href="{p.href}">{html.escape(p.title)}</a> '
                         f'<code>{html.escape(p.source.name)}</code>{when}</li>')
        sections.append(f'<h2 id="{html.escape(profile)}">Profile <code>{html.escape(profile)}</code></h2>\n'
                        f'<p>{html.escape(note)} Executed notebooks from <code>{html.escape(folder)}</code>.</p>\n<ol>\n' + "\n".join(items) + "\n</ol>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>oneranker notebooks</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 860px; margin: 40px auto; padding: 0 16px; color: #111827; line-height: 1.5; }}
a {{ color: #1d4ed8; text-decoration: none; }} a:hover {{ text-decoration: underline; }}
li {{ margin: 6px 0; }} code {{ color: #4b5563; font-size: 90%; }} .when {{ color: #6b7280; font-size: 85%; }}
</style></head>
<body>
<h1>oneranker: the executed notebooks</h1>
<p>The companion's notebooks as they were last executed, outputs and figures included, rendered to HTML
(<code>make book</code>, <code>scripts/book.py</code>): reading them runs nothing. To run them, open
<code>notebooks/</code> in JupyterLab (see the README).</p>
{chr(10).join(sections)}
</body></html>
"""


def build(out: Path = ROOT / "book", root: Path = ROOT, profiles: list[str] | None = None) -> dict[str, list[Page]]:
    """Write the book under ``out`` (replacing what was there) and return its pages by profile:
    every profile that has executed notebooks, or those of ``profiles`` that have."""
    found = {p: paths for p, paths in find_notebooks(root).items() if profiles is None or p in profiles}
    if not found:
        raise FileNotFoundError(f"no executed notebooks under {root / 'notebooks'} or {root / 'results'}/*/notebooks")
    notebooks, books = {}, {}
    for profile, paths in found.items():
        books[profile] = []
        for path in paths:
            nb = read(path)
            page = Page(profile, path, title_of(nb, path.stem), nb.metadata.get("papermill", {}).get("end_time"),
                        error_outputs(nb))
            notebooks[page.href] = nb
            books[profile].append(page)
    by_stem: dict[str, dict[str, Page]] = {}
    for pages in books.values():
        for p in pages:
            by_stem.setdefault(p.source.stem, {})[p.profile] = p

    if out.exists():
        shutil.rmtree(out)
    # Consecutive stream outputs merged and carriage returns applied, as JupyterLab shows them
    # (a tqdm bar is its last state, not one line per refresh).
    exporter = HTMLExporter(template_name="lab", config=Config({"CoalesceStreamsPreprocessor": {"enabled": True}}))
    for profile, pages in books.items():
        (out / profile).mkdir(parents=True)
        for page in pages:
            body, _ = exporter.from_notebook_node(notebooks[page.href], resources={"metadata": {"name": page.title}})
            siblings = by_stem[page.source.stem]
            body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + nav(page, pages, siblings, "top"), body, count=1)
            head, end, tail = body.rpartition("</body>")
            body = head + nav(page, pages, siblings, "bottom") + "\n" + end + tail
            body = body.replace("</head>", STYLE + "\n</head>", 1)
            (out / page.href).write_text(body, encoding="utf-8")
    (out / "index.html").write_text(index_html(books), encoding="utf-8")
    return books


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "book", help="the book's folder (default: book/)")
    ap.add_argument("--profiles", nargs="+", default=None, help="only these profiles (default: every one with executed notebooks)")
    args = ap.parse_args()
    books = build(args.out.resolve(), profiles=args.profiles)
    for profile, pages in books.items():
        print(f"{profile}: {len(pages)} notebooks")
        for p in pages:
            if p.errors:
                print(f"  warning: {p.source} carries {p.errors} error output(s)")
    print(f"open {args.out.resolve() / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
