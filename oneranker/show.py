"""What the notebooks put on the page besides tables and figures: the package's own code.

A notebook that explains a mechanism shows the function that implements it, read from the
installed package with :func:`inspect.getsource`, so the page can never drift from the code
that produced its numbers.
"""

from __future__ import annotations

import inspect
from typing import Any


def source_markdown(*objects: Any) -> str:
    """Markdown of each object's source (a function, class or method of the package), under
    its qualified name, as fenced Python."""
    if not objects:
        raise ValueError("source_markdown needs at least one function or class")
    parts = []
    for obj in objects:
        name = f"{obj.__module__}.{obj.__qualname__}"
        parts.append(f"`{name}`\n\n```python\n{inspect.getsource(obj).rstrip()}\n```")
    return "\n\n".join(parts)


def source(*objects: Any):
    """:func:`source_markdown` displayed as Markdown in a notebook."""
    from IPython.display import Markdown

    return Markdown(source_markdown(*objects))
