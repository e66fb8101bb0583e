"""nbval collection of the notebooks. Notebook 07 runs on real MovieLens-100k, which the project
does not ship: where the files are absent it is not collected, and the run's header says so and
where to get them (GroupLens: https://grouplens.org/datasets/movielens/100k/; point
ONERANKER_ML100K at the unzipped folder)."""

import os
from pathlib import Path

ML100K = Path(os.environ.get("ONERANKER_ML100K", Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"))
REAL_DATA_NOTEBOOK = "07_real_data.ipynb"
collect_ignore = [] if (ML100K / "u.data").is_file() else [REAL_DATA_NOTEBOOK]


def pytest_report_header(config):
    if collect_ignore:
        return (f"notebooks/{REAL_DATA_NOTEBOOK} not verified: MovieLens-100k not found at {ML100K} "
                "(get ml-100k.zip from https://grouplens.org/datasets/movielens/100k/ and set ONERANKER_ML100K)")
    return None
