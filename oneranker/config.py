"""Configuration: one dataclass per part of the project, and the named profiles.

Every knob is a dataclass field whose metadata carries its documentation and its allowed
range, so that a bad value is refused with a message naming the field *before* any work
starts. A profile (``quick``, ``paper``) is a named set of overrides of the defaults; the
defaults themselves are the ``quick`` profile, the one CI and the notebooks use.

Defaults are chosen for the reasons given in each field's ``doc``; none was tuned on model
results (see docs/design.md, "Honest science").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A configuration value, field name or profile name is not allowed."""


def knob(default: Any, doc: str, *, ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, choices: tuple | None = None,
         runtime: bool = False) -> Any:
    """A documented config field with an allowed range (checked in ``__post_init__``).
    ``runtime``: the field changes how fast results come, never what they are (e.g. whether a
    mask is built by compiled code); it is left out of the config hash, so caches survive it."""
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "runtime": runtime}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(hint)
        return isinstance(value, tuple) and all(_type_ok(v, args[0]) for v in value)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    raise TypeError(f"unsupported config type {hint!r}")


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return f"a tuple of {typing.get_args(hint)[0].__name__}"
    return getattr(hint, "__name__", str(hint))


def _check_range(name: str, value: Any, meta: dict) -> None:
    values = value if isinstance(value, tuple) else (value,)
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {list(meta['choices'])}")
    for v in values:
        if not isinstance(v, (int, float)):
            continue
        if v != v:  # NaN
            raise ConfigError(f"{name}={value!r}: NaN is not allowed")
        for key, ok, words in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                               ("le", lambda a, b: a <= b, "<="), ("lt", lambda a, b: a < b, "<")):
            bound = meta.get(key)
            if bound is not None and not ok(v, bound):
                raise ConfigError(f"{name}={value!r} is out of range: must be {words} {bound}")


class Validated:
    """Mixin: type- and range-checks every field after construction."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        prefix = getattr(self, "_section", type(self).__name__)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            name = f"{prefix}.{f.name}"
            if isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            if not _type_ok(value, hints[f.name]):
                raise ConfigError(f"{name}={value!r} has the wrong type: expected {_describe(hints[f.name])}")
            if hints[f.name] is float and isinstance(value, int):
                object.__setattr__(self, f.name, float(value))
            _check_range(name, value, f.metadata)
        self.check()

    def check(self) -> None:
        """Cross-field checks; subclasses override."""


@dataclass(frozen=True)
class WorldConfig(Validated):
    """The simulated ad market (``oneranker.world``). Defaults = the ``quick`` profile."""

    _section = "world"
    # --- sizes -------------------------------------------------------------------------
    n_users: int = knob(3000, "Users. Quick: enough users for several-seed error bars on a CPU.", ge=10)
    n_items: int = knob(1500, "Ads (the items to generate and rank).", ge=16)
    n_organic: int = knob(600, "Organic (non-ad) content items that appear in histories.", ge=1)
    n_categories: int = knob(20, "Ad/organic categories; each user's interests are categories.", ge=2)
    latent_dim: int = knob(16, "Dimension of the latent item/user space.", ge=2)
    content_dim: int = knob(32, "Dimension of the item content vectors (semantic-ID input).", ge=2)
    # --- catalogue shape ---------------------------------------------------------------
    category_zipf: float = knob(1.0, "Category sizes follow 1/rank^s; s=1 is Zipf's law, the usual "
                                     "shape of catalogue taxonomies.", ge=0.0, le=3.0)
    popularity_zipf: float = knob(1.0, "Item popularity follows 1/rank^s (long tail of ads).", ge=0.0, le=3.0)
    item_spread: float = knob(0.6, "Std of an item's latent vector around its category centre; "
                                    "< 1 keeps categories separable but not trivially so.", ge=0.0)
    content_noise: float = knob(0.3, "Noise std of content vectors; semantic IDs see content, not the "
                                      "latent truth, as in a real system.", ge=0.0)
    # --- users -------------------------------------------------------------------------
    max_interests: int = knob(3, "Users hold 1..max_interests interests (multi-interest users make "
                                 "target awareness useful).", ge=1)
    interest_spread: float = knob(0.4, "Std of a user interest vector around its category centre.", ge=0.0)
    n_user_attr_values: tuple[int, ...] = knob((2, 6, 8), "Cardinality of each user-attribute field "
                                                          "(gender-, age- and region-like).", ge=1)
    user_attr_signal: float = knob(0.5, "Probability that the last attribute reveals the user's main "
                                        "interest (attributes are weakly informative, as in practice).",
                                   ge=0.0, le=1.0)
    n_context_values: tuple[int, ...] = knob((4, 6), "Cardinality of each request-context field "
                                                     "(surface- and hour-like).", ge=1)
    # --- response model ----------------------------------------------------------------
    affinity_weight: float = knob(8.0, "pCTR logit per unit of best user-interest/item similarity. Chosen by "
                                       "the headroom criteria alone (interest oracle >= 4x popularity, gap >= "
                                       "10 seed-CIs; scripts/headroom.py): 8, the first setting tried, gives "
                                       "6.6x and a gap 15 seed-CIs wide in quick; the earlier 4 left the truth "
                                       "as flat as ~570 equally likely ads of 1,500 and the oracle 2.5x "
                                       "popularity.",
                                  ge=0.0)
    popularity_weight: float = knob(0.5, "pCTR logit per std of log-popularity.", ge=0.0)
    session_boost: float = knob(0.5, "Similarity bonus of the interest active in the current session "
                                     "(recent behaviour tells which interest is active).", ge=0.0)
    context_effect: float = knob(0.3, "Std of context x category pCTR logit offsets.", ge=0.0)
    cvr_dim: int = knob(8, "Dimension of the separate conversion latent space (pCVR is not pCTR).", ge=1)
    cvr_weight: float = knob(1.5, "pCVR logit per unit of user/item conversion similarity.", ge=0.0)
    base_ctr: float = knob(0.03, "Mean pCTR of a random (user, popularity-sampled ad) pair: CTR of a "
                                 "few percent, as in display advertising (docs/design.md).", gt=0.0, lt=1.0)
    base_cvr: float = knob(0.10, "Mean pCVR (conversions per click): ~10% of clicks.", gt=0.0, lt=1.0)
    # --- value -------------------------------------------------------------------------
    interest_value_corr: float = knob(-0.3, "Correlation between an ad's appeal (what users click) and "
                                            "its value tier (what pays). Negative = the interest/value "
                                            "tension the paper is about; -0.3 makes it present but not "
                                            "dominant; notebook 06 sweeps it.", ge=-1.0, le=1.0)
    bid_log_mean: float = knob(0.0, "Mean log bid (bids are log-normal; units are arbitrary).")
    bid_log_sigma: float = knob(0.6, "Std of log bid within a category.", ge=0.0)
    category_bid_sigma: float = knob(0.4, "Std of the per-category log-bid offsets (category dependent bids).",
                                     ge=0.0)
    price_log_mean: float = knob(3.0, "Mean log price (value per conversion), ~20 currency units.")
    price_log_sigma: float = knob(0.8, "Std of log price.", ge=0.0)
    price_bid_corr: float = knob(0.5, "Correlation of log price with the value tier: pricier goods bid more.",
                                 ge=-1.0, le=1.0)
    # --- logging policy and logs ---------------------------------------------------------
    mean_requests: float = knob(10.0, "Mean ad requests per user (geometric, truncated).", gt=0.0)
    min_requests: int = knob(3, "Every user has at least this many requests (train, valid, test).", ge=3)
    max_requests: int = knob(40, "Cap on requests per user.", ge=3)
    organic_per_request: float = knob(3.0, "Mean organic items consumed per session (Poisson).", ge=0.0)
    slate_size: int = knob(4, "Ads shown per request by the logging policy.", ge=1)
    n_retrieval: int = knob(40, "Candidates retrieved by the legacy cascade before its ranking stage.", ge=1)
    retrieval_interest_share: float = knob(0.5, "Share of retrieved candidates drawn from the session's "
                                                "interest category (the rest by popularity).",
                                           ge=0.0, le=1.0)
    logging_noise: float = knob(1.0, "Std of the legacy ranker's pCTR logit error: a noisy cascade.", ge=0.0)
    position_bias: float = knob(1.0, "Examination probability 1/position^eta (eta=1, the classic "
                                     "reciprocal-rank examination model).", ge=0.0)

    def check(self) -> None:
        if self.max_requests < self.min_requests:
            raise ConfigError(f"world.max_requests={self.max_requests} must be >= "
                              f"world.min_requests={self.min_requests}")
        if self.slate_size > self.n_retrieval:
            raise ConfigError(f"world.slate_size={self.slate_size} must be <= world.n_retrieval={self.n_retrieval}")
        if self.n_retrieval > self.n_items:
            raise ConfigError(f"world.n_retrieval={self.n_retrieval} must be <= world.n_items={self.n_items}")
        if self.n_categories > min(self.n_items, self.n_organic):
            raise ConfigError(f"world.n_categories={self.n_categories} must be <= n_items and n_organic "
                              f"(every category needs at least one item of each kind)")


@dataclass(frozen=True)
class DataConfig(Validated):
    """How logs become training examples (``oneranker.data``)."""

    _section = "data"
    max_history_len: int = knob(32, "Most recent history tokens kept per example (quick: 32, below the median "
                                       "history of 39: a CPU budget that halves the step time against 64; "
                                       "paper: 1,024).", ge=1)
    min_requests_per_user: int = knob(3, "Users with fewer requests are skipped (counted): one each for "
                                         "test and valid, at least one for train.", ge=3)


@dataclass(frozen=True)
class SemanticIdConfig(Validated):
    """Residual k-means semantic IDs (``oneranker.semantic_ids``)."""

    _section = "semantic_ids"
    levels: int = knob(3, "Residual k-means levels (before the dedup digit).", ge=1, le=8)
    codebook_size: int = knob(32, "Codes per level. Chosen (before any model was trained) so that fewer than "
                                  "~10% of ads collide before the dedup digit: quick 32^3 codes for 1,500 ads "
                                  "(6.5%), paper 256^3 for 20k ads (0.2%); see notebook 01.", ge=2)
    kmeans_n_init: int = knob(1, "k-means restarts per level (scikit-learn n_init).", ge=1)
    kmeans_max_iter: int = knob(100, "k-means iterations per level.", ge=1)


@dataclass(frozen=True)
class ModelConfig(Validated):
    """OneRanker's three steps and every ablation switch of the paper's tables
    (``oneranker.model``). Defaults = ``quick``; ``paper`` uses the paper's dimensions."""

    _section = "model"
    d_model: int = knob(32, "Token embedding size (paper: 128; quick: 32, so a model trains in about a minute "
                                 "on 2 CPU cores).", ge=8)
    n_heads: int = knob(2, "Attention heads per layer (quick: 2 of 16 dims; paper profile: 4 of 32).", ge=1)
    step1_layers: int = knob(2, "G-Decoder layers (paper: 4).", ge=1)
    step2_layers: int = knob(1, "Step-2 layers (paper: 2).", ge=1)
    step3_layers: int = knob(1, "R-Decoder layers (paper: 1).", ge=1)
    n_interest_tasks: int = knob(3, "Interest task tokens, assigned in funnel order to impression / click / "
                                     "conversion targets (paper: 6, i.e. two per level).", ge=1)
    n_value_tasks: int = knob(2, "Value task tokens whose outputs are averaged (bagging; paper: 2).", ge=1)
    n_fake_items: int = knob(16, "Fake Item Tokens = k-means centroids of the item embeddings (paper: 32).", ge=1)
    mlp_ratio: int = knob(2, "Hidden width of feed-forward layers, as a multiple of d_model (quick: 2, "
                                 "a CPU budget; paper profile: 4, the transformer default).", ge=1)
    dropout: float = knob(0.0, "Dropout on residual branches (quick trains a few hundred steps; early stopping "
                                   "guards it; paper: 0.1).", ge=0.0, lt=1.0)
    attention: str = knob("auto", "Attention kernel: 'sdpa' (dense mask, reference), 'flex' (FlexAttention "
                                  "block masks) or 'auto' (flex on CUDA, sdpa on CPU).",
                          choices=("auto", "sdpa", "flex"))
    compile_block_mask: bool = knob(False, "Build the Step-1 FlexAttention block mask with compiled code (CUDA "
                                           "only): about 10x faster at paper lengths, but each new sequence "
                                           "length costs a compile, too much for the short quick runs.",
                                    runtime=True)
    item_representation: str = knob("sid+id", "An ad's embedding: 'sid' = the sum of its semantic-ID code "
                                    "embeddings only (the paper's tokenisation, and this project's model "
                                    "before the learnability work); 'id' = a per-ad embedding and output "
                                    "bias only; 'sid+id' = both, so that popularity and an ad's own appeal, "
                                    "which content does not hold, can be learned.",
                                    choices=("sid", "id", "sid+id"))
    positions: str = knob("recency", "Position embeddings: 'recency' counts history tokens back from the "
                                     "newest (the current session sits at the same positions in every "
                                     "example); 'absolute' counts from the sequence start.",
                          choices=("recency", "absolute"))
    value_features: bool = knob(True, "The value heads and the ranker see each ad's standardised log bid "
                                      "(a value head adds w x log bid to its scores; the ranker adds a "
                                      "projection of it to each candidate). False: ads are content and ID "
                                      "only.")
    embedding_init_std: float = knob(0.02, "Initial std of every embedding table. 1 (PyTorch's default) starts "
                                          "catalogue scores at several units, so the first softmax over the "
                                          "catalogue is far from uniform (a first loss of ~44 nats against "
                                          "ln 1,682 = 7.4 on MovieLens); 0.02 (GPT-2's choice) starts at a "
                                          "uniform guess.", gt=0.0)
    task_query: str = knob("learned+last", "What each Step-2 task token starts from (the paper does not say): "
                                           "'learned' = its learned vector alone, the same for every request, "
                                           "which must find the current session by cross-attention over the "
                                           "whole history; 'learned+last' = that vector plus the Step-1 state "
                                           "at the newest history token (the state the Step-1 generator's head "
                                           "reads). Chosen by the learning criterion (a model well above "
                                           "popularity, its curve flattened), not by an ablation's outcome. "
                                           "At paper history lengths (one H200, seed 0, batch 256; generated "
                                           "list) Step 2 alone with 'learned' queries closed 31% of the "
                                           "popularity -> oracle gap after 27 epochs, still climbing slowly, "
                                           "and with 'learned+last' and step2_init='zero' 66% after 32, "
                                           "flattening; in quick (short histories) both learn, 'learned+last' "
                                           "in about half the epochs (README, 'Do the models learn?').",
                           choices=("learned", "learned+last"))
    step2_init: str = knob("zero", "How Step 2's residual branches start (the paper does not say): "
                                      "'default' = PyTorch's initialisation of every layer; 'zero' = the "
                                      "output projection of each attention and MLP branch and the last layer "
                                      "of the centroid-preference MLP start at 0, so that at the first step "
                                      "each task output is the normalised task query itself and the dual "
                                      "channel is the semantic match alone (zero-initialised residual "
                                      "branches, as in Fixup, ReZero and DiT's adaLN-zero). With "
                                      "task_query='learned+last' Step 2 then starts as the Step-1 generator "
                                      "and learns what to add to it. Chosen with task_query, by the same "
                                      "criterion: at paper scale (seed 0, learned+last, no L_DC) the full "
                                      "model's generated list closed 63% of the gap at epoch 27 with it and "
                                      "46% at epoch 27 without.",
                           choices=("default", "zero"))
    # --- ablation switches (paper Tables 2 and 3) ----------------------------------------
    use_step2: bool = knob(True, "False: 'ranker on Step 1 only' - no Step 2; a Step-1 next-item head generates.")
    use_task_tokens: bool = knob(True, "False: 'without Fake Items and task tokens' - one shared query token.")
    use_fake_items: bool = knob(True, "False: 'Step 2 without Fake Item Tokens'.")
    heterogeneous_mask: bool = knob(True, "False: 'without the heterogeneous mask' (full self-attention).")
    step2_order: str = knob("cross_first", "'self_first' is the paper's 'self-attention before cross-attention'.",
                            choices=("cross_first", "self_first"))
    use_ranker: bool = knob(True, "False: 'Step 2 only (no ranker)'.")
    ranker_kv: str = knob("step1+step2", "R-Decoder keys/values: 'step1+step2' (K/V pass-through of both) or "
                                         "'step1' ('without Step-2 K/V in the ranker').",
                          choices=("step1+step2", "step1"))

    def check(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(f"model.d_model={self.d_model} must be divisible by model.n_heads={self.n_heads}")


@dataclass(frozen=True)
class TrainConfig(Validated):
    """Losses and optimisation (``oneranker.losses``, ``oneranker.train``)."""

    _section = "train"
    alpha: float = knob(1.0, "Weight of L_MTP (not stated in the paper).", ge=0.0)
    beta: float = knob(1.0, "Weight of L_rank (BPR).", ge=0.0)
    gamma: float = knob(0.5, "Weight of L_DC. 0 is the ablation 'without DC loss'.", ge=0.0)
    tau: float = knob(1.0, "Temperature of the ranker's soft labels in L_DC.", gt=0.0)
    dc_detach_ranker: bool = knob(True, "Stop the L_DC gradient into the ranker (the paper does not say).")
    value_click_weight: float = knob(1.0, "Realised value of an impression = bid x (this x click + ...).", ge=0.0)
    value_conv_weight: float = knob(3.0, "... + this x conversion): conversion > click > impression.", ge=0.0)
    value_power: float = knob(1.0, "Value heads sample targets with probability ~ value^power.", ge=0.0)
    mtp_weighting: str = knob("none", "'value': weight every interest head's targets by the impression's "
                              "normalised bid x (1 + click_weight x click + conv_weight x conversion), "
                              "the value-aware loss weighting of GPR (baselines); 'none': OneRanker's "
                              "plain L_MTP.", choices=("none", "value"))
    n_random_negatives: int = knob(12, "Catalogue ads added to each request's impressions as ranker / DC "
                                       "candidates during training (value 0).", ge=0)
    dc_candidates: str = knob("impressions", "The candidate set L_DC is computed over (the paper "
                                                     "says 'a candidate set'): 'impressions+negatives' = the "
                                                     "ranker's training candidates, the logged impressions plus "
                                                     "the random catalogue ads; 'impressions' = the logged "
                                                     "impressions alone, the ads a production generator did "
                                                     "propose. A random ad and an unclicked impression both have "
                                                     "value 0, so the ranker never learns to put one above the "
                                                     "other, and over both L_DC pulls the generator towards "
                                                     "random ads: at paper scale (seed 0, generated list) the "
                                                     "full model then closed 9% of the gap at epoch 15 against "
                                                     "36% without L_DC. Over the impressions it was at 12% at "
                                                     "epoch 9, as the run without random negatives, which "
                                                     "reached 64% at epoch 29 (chosen by the learning "
                                                     "criterion, not by the DC ablation's outcome: without "
                                                     "L_DC it was at 16% at epoch 9).",
                              choices=("impressions+negatives", "impressions"))
    batch_size: int = knob(256, "Requests per batch.", ge=1)
    epochs: int = knob(30, "Maximum epochs: a cap, not a budget. Models train until the validation loss "
                              "stops improving (patience); in quick a Step-1 generator stops after ~8 "
                              "epochs and the full model after ~17, and 5 epochs (the earlier budget) "
                              "left the full model closing 13% of the popularity -> oracle gap instead "
                              "of ~57% (scripts/learnability.py).", ge=1)
    lr: float = knob(5e-3, "Peak AdamW learning rate.", gt=0.0)
    weight_decay: float = knob(0.01, "AdamW weight decay.", ge=0.0)
    warmup_steps: int = knob(20, "Linear warm-up steps, then the learning-rate schedule (train.lr_schedule).",
                             ge=0)
    patience: int = knob(2, "Epochs without validation improvement before early stopping (2: one noisy "
                            "epoch does not end training); under train.lr_schedule='plateau' counted "
                            "only once the learning rate is at its floor.", ge=0)
    lr_schedule: str = knob("cosine", "After the warm-up: 'cosine' = decay to 10% of the peak at the cap "
                                      "(train.epochs), so a run that reaches the cap is annealed by its budget "
                                      "and its best epoch comes last; 'plateau' = the peak until the "
                                      "validation loss stops improving, then x train.lr_decay after each "
                                      "plateau of more than train.lr_patience epochs (torch's "
                                      "ReduceLROnPlateau rule), down to train.lr_floor x the peak, and early "
                                      "stopping there: a schedule the cap does not shape (oneranker.train."
                                      "plateau_schedule).", choices=("cosine", "plateau"))
    lr_decay: float = knob(0.5, "plateau: the factor of each decay of the learning rate.", gt=0.0, lt=1.0)
    lr_patience: int = knob(2, "plateau: epochs without a new best validation loss the rate waits out "
                               "before it decays (ReduceLROnPlateau's patience).", ge=0)
    lr_floor: float = knob(0.125, "plateau: the lowest learning rate, as a fraction of train.lr (0.125: "
                                  "three halvings); early stopping counts train.patience epochs there.",
                           gt=0.0, le=1.0)
    length_grouping: int = knob(0, "Batches of similar history length: each epoch's shuffled order is cut "
                                   "into windows of this many batches, each window sorted by history length "
                                   "and cut into batches, and the batches shuffled (0 = off, plain shuffled "
                                   "batches). Padding is then a few tokens instead of up to the longest "
                                   "history: about 3x fewer tokens per step at paper lengths, whose mean "
                                   "history is a quarter of the 1,024 cap. Off in quick (short histories).",
                                ge=0)
    max_train_requests: int = knob(12_000, "Training requests per epoch, a fresh random subset each "
                                                "epoch (0 = all). Quick: half the 24k, a CPU budget.", ge=0)
    eval_requests: int = knob(1000, "Validation requests used for early stopping (0 = all).", ge=0)
    n_candidates: int = knob(30, "Candidates generated per request for the ranker (the paper's lists of 30).",
                             ge=1)
    stack_seeds: tuple[int, ...] = knob((), "Seeds whose models of this config train together as one batched "
                                            "model (oneranker.stacked): each kernel of a step M times larger "
                                            "instead of M times more kernels, meant to fit the paper series on "
                                            "one GPU; on the H200 it cost more GPU time per model, not less "
                                            "(benchmarks/stacked_step.py; docs/paper_profile.md, 'Stacked "
                                            "models'), so no profile sets it. A "
                                            "model of a seed among them is a function of the whole stack "
                                            "(dropout noise is drawn for the stack at once), so the field is "
                                            "then part of the config hash (Config.hash); a seed not among "
                                            "them, or a stack of one, trains alone and hashes as if the field "
                                            "were unset. () = every model alone.", ge=0)
    compile: str = knob("off", "What of a training step torch.compile fuses, on CUDA only (the CPU always "
                               "runs eager, exactly): 'blocks' = each transformer block of the three steps, "
                               "compiled in place (regional compilation; slower than eager on the H200, "
                               "alone and four models at once); 'loss' = the whole forward pass and the "
                               "three losses as one graph (warming it up on the paper profile's padded "
                               "shapes outlasted 5.5 and 6.5 minutes on the H200; not with distributed "
                               "training); 'off' = eager. Dropout draws the eager random "
                               "stream; fused kernels change bf16 rounding, never the computation "
                               "(tests/test_train.py compares each with eager on CUDA), so the field is "
                               "left out of the config hash.", choices=("off", "blocks", "loss"), runtime=True)
    cuda_graphs: bool = knob(False, "Replay each training step's GPU work (loss, backward, clip, AdamW) as a "
                                    "CUDA graph captured once per batch shape (oneranker.graphs), on CUDA only "
                                    "(the CPU always runs eager): one launch for the ~1,900 kernels of a paper "
                                    "step, whose launches are most of its wall time on the lent H200 machines. "
                                    "The learning rate becomes a float32 tensor on the GPU, so a graphed run "
                                    "follows the eager one to rounding (tests/test_train.py compares them on "
                                    "CUDA), and the field is left out of the config hash. Not with distributed "
                                    "training, train.compile or train.stack_seeds.", runtime=True)

    def check(self) -> None:
        if len(set(self.stack_seeds)) != len(self.stack_seeds):
            raise ConfigError(f"train.stack_seeds={self.stack_seeds}: a seed may appear once")
        if self.stack_seeds and self.compile != "off":
            raise ConfigError(f"train.compile={self.compile!r} does not apply to stacked models "
                              "(train.stack_seeds); set one of them")
        if self.stack_seeds and self.cuda_graphs:
            raise ConfigError("train.cuda_graphs does not apply to stacked models (train.stack_seeds); "
                              "set one of them")
        if self.stack_seeds and self.lr_schedule == "plateau":
            raise ConfigError("train.lr_schedule='plateau' does not apply to stacked models (train.stack_seeds: "
                              "one learning rate for the stack, each model's plateau its own); set one of them")


# The plateau schedule's own fields: a cosine config's hash leaves them out (Config.hash), so adding
# them kept every cosine config's hash, and with it every cached model, as it was.
PLATEAU_FIELDS: tuple[str, ...] = ("lr_schedule", "lr_decay", "lr_patience", "lr_floor")


@dataclass(frozen=True)
class Config(Validated):
    """Everything one run needs. Built by :func:`make_config`, never by hand-editing defaults."""

    _section = "config"
    profile: str = knob("quick", "Name of the profile this config was built from.")
    seed: int = knob(0, "Seed of the world, the data split and everything downstream.", ge=0)
    world: WorldConfig = field(default_factory=WorldConfig)
    data: DataConfig = field(default_factory=DataConfig)
    semantic_ids: SemanticIdConfig = field(default_factory=SemanticIdConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self, sections: tuple[str, ...] | None = None) -> str:
        """Short stable hash of the whole config (or of some sections plus the seed):
        caches keyed by it are never reused for another config."""
        d = self.to_dict()
        for name, cls in SECTIONS.items():
            for f in dataclasses.fields(cls):
                if f.metadata.get("runtime"):
                    del d[name][f.name]
        if not self.stacked:   # a model that trains alone is the same model whatever the field says
            d["train"].pop("stack_seeds", None)
        if self.train.lr_schedule == "cosine":   # the plateau's fields do not act on a cosine schedule
            for name in PLATEAU_FIELDS:
                d["train"].pop(name, None)
        if sections is not None:
            d = {k: d[k] for k in ("seed", *sections)}
        blob = json.dumps(d, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def stacked(self) -> bool:
        """Whether this config's model trains in a stack (``train.stack_seeds`` names its seed
        and at least one other; oneranker.stacked)."""
        seeds = self.train.stack_seeds
        return len(seeds) > 1 and self.seed in seeds

    def data_hash(self) -> str:
        """Hash of what determines the dataset (not the model or training)."""
        return self.hash(("world", "data", "semantic_ids"))


# The defaults before the learnability work (issue "Models that demonstrably learn", commit
# 41c59d2): a flat market, ads as semantic-ID codes only, absolute positions, no bid features,
# unit-variance embeddings, a 5-epoch budget, learned task queries, PyTorch's initialisation of
# Step 2 and L_DC over all the ranker's candidates. scripts/learnability.py measures them beside
# today's defaults; nothing else uses them.
BEFORE_LEARNABILITY: dict[str, Any] = {
    "world.affinity_weight": 4.0,
    "model.item_representation": "sid", "model.positions": "absolute", "model.value_features": False,
    "model.embedding_init_std": 1.0,
    "train.epochs": 5, "train.patience": 1,
    # and the paper's literal reading of Step 2 and L_DC, the defaults until the paper-scale
    # probes (docs/learning.md)
    "model.task_query": "learned", "model.step2_init": "default", "train.dc_candidates": "impressions+negatives",
}

SECTIONS: dict[str, type] = {"world": WorldConfig, "data": DataConfig, "semantic_ids": SemanticIdConfig,
                             "model": ModelConfig, "train": TrainConfig}

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # The defaults: every notebook runs in minutes on 2 CPU cores.
    "quick": {},
    # A smoke test of the notebooks' code, not of the method: a toy market and model, every
    # notebook in about a minute (`make reproduce PROFILE=smoke`); its numbers mean nothing.
    "smoke": {
        "world": {"n_users": 300, "n_items": 200, "n_organic": 100, "n_categories": 8},
        "semantic_ids": {"codebook_size": 4},
        "data": {"max_history_len": 24},
        "model": {"d_model": 16, "n_heads": 2, "n_fake_items": 4},
        "train": {"epochs": 2, "max_train_requests": 256, "eval_requests": 64, "warmup_steps": 2},
    },
    # Paper dimensions on a GPU: the paper's model (embedding 128, 4/2/1 layers, 6 + 2 task
    # tokens, 32 Fake Items) over 20k ads and histories up to 1,024 tokens. Sized for `make
    # paper` on one H100 in under 20 minutes, before any paper-profile result existed (and
    # before training ran to convergence: its former 2-epoch budget is gone, so its GPU time
    # is now set by early stopping and must be re-measured):
    # ~75 models over 9 worlds (3 seeds; notebook 06 adds two world settings). Measured there
    # (benchmarks/training_throughput.py): 4 to 8 models trained at once reach 6,400 to
    # 7,200 requests/s in all, so each model gets 2 x 24k requests (188 steps of 256; quick
    # trains 235): ~75 models in ~10-12 minutes of training. A world of 30k users (~830k training requests)
    # already holds 17x more than any model reads; 100k users only tripled the simulation
    # time (3 min per world on the H100 host's CPU). On one H200 (seed 0, early stopping off),
    # Step 2 and the full model learn at these history lengths only with the task queries,
    # the Step-2 initialisation and the L_DC candidates that are now every profile's defaults,
    # and need about thirty epochs (docs/learning.md). On seeds 1 and 2 they learn
    # only at the lower learning rate and longer warm-up below (runs 7 and 8), and then their
    # served lists flatten after about 12-15 epochs, 71-79% of the popularity -> oracle gap.
    "paper": {
        "world": {"n_users": 30_000, "n_items": 20_000, "n_organic": 10_000, "n_categories": 100,
                  "latent_dim": 32, "content_dim": 64, "mean_requests": 30.0, "max_requests": 120,
                  "organic_per_request": 6.0, "n_retrieval": 100},
        "data": {"max_history_len": 1024},
        "semantic_ids": {"levels": 3, "codebook_size": 256},
        "model": {"d_model": 128, "n_heads": 4, "mlp_ratio": 4, "step1_layers": 4, "step2_layers": 2, "step3_layers": 1,
                  "n_interest_tasks": 6, "n_value_tasks": 2, "n_fake_items": 32, "dropout": 0.1,
                  "compile_block_mask": True},
        # lr 1e-3 after three epochs of linear warm-up (282 steps of 256): with 2e-3 after 30
        # steps the paper-sized model stayed at popularity on seeds 1 and 2 of three (runs 6
        # and 7, docs/learning.md), while fp32 or dense attention did not help.
        # The plateau schedule and a 60-epoch cap, by the rule scripts/patience_study.py states
        # before its runs (docs/paper_profile.md, "Trained to convergence?"): under the cosine decay to a 30-epoch
        # cap most runs ended at the cap, annealed by it; on one H200 (seeds 0-2, the full model
        # and the Step-1 generator) all six plateau runs ended by their stopping rule, after
        # 37-48 epochs, and neither model's best validation loss was higher under it (paired by
        # seed, the CI not above zero; on one seed of three each ended slightly higher).
        # The cap is 120 since 2026-12-06, by a rule stated before any run under it: at least twice
        # the longest run the stopping rule has needed (59). Of the 87 runs of the series under cap 60,
        # 86 stopped by their rule after 29-59 epochs and one reached the cap still learning
        # (06, seed 2, the HSTU-style baseline; docs/paper_profile.md). The plateau schedule
        # does not depend on the cap (oneranker.train.Trainer.lr_at), so a run that stops
        # before either cap trains the same epochs under both, in exact arithmetic (tests/test_train.py).
        "train": {"batch_size": 256, "lr": 1e-3, "warmup_steps": 3 * -(-24_000 // 256),
                  "max_train_requests": 24_000, "length_grouping": 20, "eval_requests": 2000,
                  "lr_schedule": "plateau", "epochs": 120},
    },
}


def _apply(section_cls: type, base: Any, name: str, overrides: dict[str, Any]) -> Any:
    allowed = [f.name for f in dataclasses.fields(section_cls)]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown field {name}.{unknown[0]}; allowed fields of {name}: {', '.join(allowed)}")
    return dataclasses.replace(base, **overrides) if base is not None else section_cls(**overrides)


def make_config(profile: str = "quick", seed: int = 0, **overrides: Any) -> Config:
    """Build the config of a named profile, with overrides.

    Overrides are given per section, as dicts (``world={"n_users": 500}``) or dotted keys
    in a dict passed as ``**{"world.n_users": 500}``. Everything is validated here.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    nested: dict[str, dict[str, Any]] = {k: dict(v) for k, v in PROFILES[profile].items()}
    for key, value in overrides.items():
        section, _, fname = key.partition(".")
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r}; choose one of {sorted(SECTIONS)}")
        if fname:
            nested.setdefault(section, {})[fname] = value
        else:
            if not isinstance(value, dict):
                raise ConfigError(f"override of section {section!r} must be a dict of fields")
            nested.setdefault(section, {}).update(value)
    parts = {name: _apply(cls, None, name, nested.get(name, {})) for name, cls in SECTIONS.items()}
    return Config(profile=profile, seed=seed, **parts)


def config_from_dict(d: dict) -> Config:
    """Inverse of :meth:`Config.to_dict` (used to check caches and checkpoints)."""
    d = dict(d)
    parts = {name: _apply(cls, None, name, d.pop(name, {})) for name, cls in SECTIONS.items()}
    return Config(**d, **parts)


def describe(section_cls: type) -> list[tuple[str, Any, str]]:
    """(field, default, doc) rows, for the README and the notebooks."""
    return [(f.name, getattr(section_cls(), f.name), f.metadata.get("doc", ""))
            for f in dataclasses.fields(section_cls)]
