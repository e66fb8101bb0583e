"""OneRanker companion: generation and ranking unified in one model for ad recommendation.

One module per idea of the paper (see docs/design.md, "Layout"): ``config`` (profiles),
``world`` (the simulated ad market), ``schema`` and ``data`` (logs, splits, datasets on disk,
batching), ``loaders`` (MovieLens, Taobao), ``semantic_ids`` (residual k-means codes and their
trie), ``plots`` (notebook figures), ``reproduce`` (papermill runner).
"""

__version__ = "0.1.0"
