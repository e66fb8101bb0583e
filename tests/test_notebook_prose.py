"""The committed notebooks' prose quotes no number that their outputs lack.

Numbers in results must be rendered from the tables (``tables.paired_sentence`` and friends),
never typed into markdown, where they outlive the run that produced them. This test reads
every committed notebook (those of other profiles in results/*/notebooks too): each number
its markdown cells state (decimals, percentages, ratios such as 2.9x, and integers of two or
more digits) must appear as a number in the notebook's own outputs or code, so a stale
sentence fails here. LaTeX, inline code and links are not prose numbers and are skipped.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _committed(pattern: str) -> list[Path]:
    """The files git tracks under ``pattern`` (not a local run's, e.g. results/smoke); without
    git (an unpacked archive), every file matching it."""
    try:
        out = subprocess.run(["git", "ls-files", "--", pattern], cwd=ROOT, capture_output=True, text=True,
                             timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return sorted(ROOT.glob(pattern))
    return sorted(ROOT / name for name in out)


# the committed default-profile notebooks and the executed ones of other profiles (e.g. paper)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb")) + _committed("results/*/notebooks/0*.ipynb")

_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])[-+−]?\d+(?:\.\d+)?")
_SKIP = [re.compile(p, re.S) for p in (r"\$\$.*?\$\$", r"\$[^$\n]+\$", r"`[^`]*`", r"\]\([^)]*\)",
                                      r"https?://\S+", r"<[^>]+>")]


def numbers(text: str) -> set[float]:
    """Every number of ``text`` as a float (thousands separators and signs dropped)."""
    out = set()
    for m in _NUMBER.finditer(text):
        token = m.group(0).lstrip("+-−").replace(",", "")
        out.add(round(float(token), 6))
    return out


def prose_numbers(text: str) -> set[float]:
    """The numbers a markdown cell states: decimals, percentages, ratios and integers >= 10,
    outside LaTeX, code and links; not the numbers that name things (notebook 04, Step 2,
    Table 3, HR@5, top-10) and not years."""
    for skip in _SKIP:
        text = skip.sub(" ", text)
    text = re.sub(r"\b(?:notebooks?|Step|Steps|Table|Tables|stop|issue|level|levels|seed|seeds|epoch|head|heads)\s+\d+(?:\s*(?:-|–|and|,)\s*\d+)*",
                  " ", text, flags=re.I)
    text = re.sub(r"(?<=\S)[@\-–]\d+\b|\b\d+(?=-)|\b0\d\b|\b20[12]\d\b", " ", text)  # HR@5, top-10, 10-seed, 01, years
    text = re.sub(r"\b95\s*%\s*(?=CI|confidence)", " ", text)                     # the CI level, a convention
    found = set()
    for m in _NUMBER.finditer(text):
        token = m.group(0).lstrip("+-−").replace(",", "")
        value = float(token)
        if "." in token or value >= 10:
            found.add(round(value, 6))
    return found


def _output_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        for kind in ("text/plain", "text/markdown", "text/html"):
            parts.append("".join(out.get("data", {}).get(kind, "")))
    return "\n".join(parts)


def unquoted(path: Path) -> dict[int, set[float]]:
    """Per markdown cell, the numbers its prose states that no output or code of the notebook
    holds (also as a percentage of a fraction, or a fraction of a percentage)."""
    nb = json.loads(path.read_text())
    known = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            known |= numbers("".join(cell["source"])) | numbers(_output_text(cell))
    known |= {round(v * 100, 6) for v in known} | {round(v / 100, 6) for v in known}

    def is_known(value: float) -> bool:
        return value in known or any(abs(value - k) <= 0.5 * 10 ** -_decimals(value) for k in known)

    missing = {}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            bad = {v for v in prose_numbers("".join(cell["source"])) if not is_known(v)}
            if bad:
                missing[i] = bad
    return missing


def _decimals(value: float) -> int:
    text = f"{value:.6f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def test_prose_numbers_are_read_by_hand():
    text = ("HR@5 of 0.0377 beside the paper's 0.6213 (Table 2, notebook 04); a cap of 128, 2.9× the FLOPs, "
            "12.5% of the gap, top-10 lists, 1,024 tokens in 2026, `code 99`, $x^{42}$, at -0.3 and -12.5%.")
    assert prose_numbers(text) == {0.0377, 0.6213, 128, 2.9, 12.5, 1024, 0.3}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_notebook_quotes_a_number_its_outputs_lack(path):
    missing = unquoted(path)
    assert not missing, f"{path.relative_to(ROOT)}: markdown cells state numbers no output or code holds: " + "; ".join(
        f"cell {i}: {sorted(v)}" for i, v in missing.items())


def test_a_stale_sentence_is_caught(tmp_path):
    """Notebook 04 once said 48.7× under a cell printing 44.77×: such a notebook fails."""
    cell = lambda kind, text, out=None: {"cell_type": kind, "source": [text], "metadata": {},  # noqa: E731
                                          **({"outputs": [{"output_type": "stream", "text": [out]}]} if kind == "code" else {})}
    nb = {"cells": [cell("code", "ratio = flops()", "44.77"), cell("markdown", "Pass-through needs 48.7× fewer FLOPs."),
                    cell("markdown", "It needs 44.77× fewer, at a 95% CI.")], "metadata": {}, "nbformat": 4,
          "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    assert unquoted(path) == {1: {48.7}}
