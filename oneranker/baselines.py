"""Baselines of the paper's Table 1 and its online A/B, as configs of the same model.

Every baseline is trained by :class:`oneranker.train.Trainer` and evaluated by
:mod:`oneranker.evaluate`, so differences come from the method and not from the plumbing:

* ``HSTU-style``: a SASRec/HSTU-like generator: Step 1 (the G-Decoder) with one next-ad head
  (its last state scores the catalogue); no Step 2, no ranker.
* ``GPR-style``: a multi-head generator (task tokens over the G-Decoder, no Fake Item
  Tokens, no ranker) trained with GPR's value-aware loss weighting: every interest target
  weighted by its normalised bid and funnel grade, conversion > click > impression
  (``train.mtp_weighting="value"``).
* ``single-stage fusion``: value injected into one shared generator head: a single query
  token feeds every head (``model.use_task_tokens=False``) and the loss is value-weighted,
  so interest and value compete in one output space (the dilemma the paper starts from).
* ``cascade``: the online baseline of the paper: the GPR-style generator, and an
  independently trained ranker with its own encoder that re-encodes the history to score
  the generator's candidates (:class:`Cascade`; evaluated by
  ``evaluate.model_lists(generator, ..., ranker=ranker)``).
* ``OneRanker``: the full model (the profile's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass, field


HSTU = {"model.use_step2": False, "model.use_ranker": False}
GPR = {"model.use_fake_items": False, "model.use_ranker": False, "train.mtp_weighting": "value"}
FUSION = {"model.use_task_tokens": False, "model.use_fake_items": False, "model.use_ranker": False,
          "train.mtp_weighting": "value"}
# SASRec-style: one ID embedding per item, a causal transformer, the next item scored over
# the whole catalogue (SASRec's architecture with a full softmax; the reference baseline of
# sequential recommendation on real logs, oneranker.realdata).
SASREC = {**HSTU, "model.item_representation": "id"}
# The cascade's ranker: its own G-Decoder and an R-Decoder over it, trained with L_rank only.
CASCADE_RANKER = {"model.use_step2": False, "train.alpha": 0.0, "train.gamma": 0.0}


@dataclass(frozen=True)
class Cascade:
    """A two-model pipeline: ``generator`` overrides produce the candidates, ``ranker``
    overrides give an independently trained model that re-encodes the history and ranks them."""

    generator: dict = field(default_factory=lambda: dict(GPR))
    ranker: dict = field(default_factory=lambda: dict(CASCADE_RANKER))


BASELINES: dict[str, dict | Cascade] = {
    "HSTU-style": HSTU,
    "GPR-style": GPR,
    "single-stage fusion": FUSION,
    "cascade": Cascade(),
    "OneRanker": {},
}
