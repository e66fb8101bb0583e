"""make book (scripts/book.py): the committed executed notebooks as a static HTML book."""

import base64
import html
import re
from pathlib import Path

import nbformat
import pytest

from conftest import load_tool
from oneranker.reproduce import DEFAULT_PROFILE, notebook_paths

book = load_tool("scripts/book.py")


def _text(page: str) -> str:
    """What a reader sees: the page without its tags, entities decoded."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def committed_book(tmp_path_factory):
    """The book of the committed notebooks (the default profile's, and the paper profile's where
    committed; a local smoke run's are left out)."""
    out = tmp_path_factory.mktemp("book")
    return out, book.build(out, profiles=[DEFAULT_PROFILE, "paper"])


def test_the_index_links_every_committed_notebook_by_its_title(committed_book):
    out, books = committed_book
    assert [p.source for p in books[DEFAULT_PROFILE]] == notebook_paths()
    index = (out / "index.html").read_text()
    for profile, pages in books.items():
        for page in pages:
            assert f'href="{page.href}"' in index, f"index does not link {page.href}"
            assert (out / page.href).is_file()
            assert html.escape(page.title) in index
            assert page.title != page.source.stem, f"{page.source.name} has no markdown heading"


def test_every_page_has_its_title_an_inline_figure_and_no_error(committed_book):
    out, books = committed_book
    for pages in books.values():
        for page in pages:
            text = (out / page.href).read_text()
            seen = _text(text)
            assert html.unescape(re.search(r"<title>(.*?)</title>", text, re.S).group(1)) == page.title
            assert page.title in seen, f"{page.href}: title not shown"
            assert "data:image/png;base64" in text, f"{page.href}: no inline figure"
            assert "Traceback (most recent call last)" not in seen, f"{page.href}: a Python traceback"
            assert not re.search(r"\bename\b", text), f"{page.href}: an error output"
            nb = book.read(page.source)
            assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"], \
                f"{page.source.name} carries an error output"
            assert page.errors == 0
            # navigation: back to the contents from every page
            assert 'href="../index.html"' in text


PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000030101000518d84e0000000049454e44ae426082")).decode()


def _notebook(path: Path, title: str, error: bool = False) -> None:
    out = nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})
    bar = [nbformat.v4.new_output("stream", name="stderr", text=f"\rbar: {pct}%|") for pct in (0, 50, 100)]
    outputs = [*bar, nbformat.v4.new_output("stream", name="stderr", text="\n"), out]
    if error:
        outputs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="boom",
                                              traceback=["Traceback (most recent call last)", "ValueError: boom"]))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"Intro\n\n## {title}\n\ntext"),
                                         nbformat.v4.new_code_cell("plot()", outputs=outputs)])
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_other_profiles_get_their_own_section_and_cross_links(tmp_path):
    root = tmp_path / "repo"
    _notebook(root / "notebooks" / "01_a.ipynb", "One")
    _notebook(root / "notebooks" / "02_b.ipynb", "Two *emph*")
    _notebook(root / "results" / "paper" / "notebooks" / "01_a.ipynb", "One", error=True)
    (root / "results" / "quick").mkdir(parents=True)          # a profile without notebooks
    books = book.build(tmp_path / "book", root=root)
    assert list(books) == [DEFAULT_PROFILE, "paper"]
    assert [p.title for p in books[DEFAULT_PROFILE]] == ["One", "Two emph"]
    assert books["paper"][0].errors == 1
    index = (tmp_path / "book" / "index.html").read_text()
    assert index.index(f'href="{DEFAULT_PROFILE}/01_a.html"') < index.index('href="paper/01_a.html"')
    first = (tmp_path / "book" / DEFAULT_PROFILE / "01_a.html").read_text()
    assert f'href="../{DEFAULT_PROFILE}/02_b.html"' in first and 'href="../paper/01_a.html"' in first
    assert f'href="../{DEFAULT_PROFILE}/01_a.html"' in (tmp_path / "book" / DEFAULT_PROFILE / "02_b.html").read_text()
    # a progress bar shows its last state, as in JupyterLab, not one line per refresh
    assert "bar: 100%" in first and "bar: 0%" not in first and "bar: 50%" not in first
