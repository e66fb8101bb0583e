"""The notebooks show the package's own code, read from the installed module."""

import inspect

import pytest

from oneranker import losses, show


def test_source_markdown_is_the_functions_own_code():
    text = show.source_markdown(losses.dc_term, losses.Term)
    assert "`oneranker.losses.dc_term`" in text and "`oneranker.losses.Term`" in text
    assert inspect.getsource(losses.dc_term).rstrip() in text
    assert text.count("```python") == 2
    with pytest.raises(ValueError, match="at least one"):
        show.source_markdown()
