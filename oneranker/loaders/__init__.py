"""Real-data loaders: public log formats converted to the canonical :class:`~oneranker.schema.Logs`.

Every file is read and checked completely before anything is built, so a bad file fails with a
:class:`~oneranker.schema.DataError` naming the file, the 1-based line and the problem, and no
half-built logs are ever returned. Same files and seed, same logs: all randomness comes from one
``numpy.random.Generator`` seeded by ``seed``. Counted skips and the choices below are recorded
in ``logs.notes`` (keys starting with ``skipped`` are counts of dropped users).

* :mod:`.movielens`: GroupLens MovieLens (ml-100k or ml-1m layout), semi-synthetic ads and slates;
* :mod:`.taobao`: Alibaba's Taobao display-ad click logs, with post-click conversions;
* :mod:`.tables`: the table parsing and checks both share.
"""

from .movielens import load_movielens
from .tables import SyntheticValue
from .taobao import load_taobao

__all__ = ["SyntheticValue", "load_movielens", "load_taobao"]
