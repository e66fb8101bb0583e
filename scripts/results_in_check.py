"""Refuse, before any work, results brought in from another sitting that today's code would not
read: a paper sitting that starts from an earlier sitting's results (``.device/paper.sh``
RESULTS_IN) trains only what they do not answer, but results are keyed by the model and result
code, so after a change to either none of them serves and the sitting would train every model
again, more than it has time for.

    python scripts/results_in_check.py CACHE_DIR     (exit 1 when no record is under today's code)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oneranker.cache import MODEL_CODE, RESULT_CODE, asked_under_today, code_version


def verdict(cache_dir: Path) -> tuple[bool, str]:
    """Whether the results in ``cache_dir`` can serve today's code, and the line that says so."""
    today, other = asked_under_today(cache_dir)
    codes = f"model code {code_version(MODEL_CODE)}, result code {code_version(RESULT_CODE)}"
    line = f"results brought in: {today} models' records under today's {codes}; {other} under other code"
    if today == 0:
        return False, line + (": none would serve, so every model would train again (bring in results made "
                              "under this code, or run the notebook from an empty cache in a sitting of its own)")
    return True, line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", type=Path, help="the cache folder the results were unpacked into (its results/)")
    args = ap.parse_args()
    if not (args.cache / "results").is_dir():
        ap.error(f"no results/ folder in {args.cache}")
    ok, line = verdict(args.cache)
    print(line)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
