"""Every model the notebooks train, named once, so that all of them can be trained up front.

Each notebook compares variants of the same model (a dict of config overrides, or a
:class:`~oneranker.baselines.Cascade`). They are defined here rather than in the notebooks
because many are shared: the full OneRanker of seeds 0-2 is trained once and read by
notebooks 03, 04, 05 and 06 from the model cache. :func:`oneranker.pool.train_notebook_models` trains every
model of every notebook in one pool of worker processes (``python -m oneranker pretrain``;
``make reproduce`` runs it first): with converged models the notebooks train about a
hundred of them, and one pool keeps every core busy where per-notebook pools would wait
for each notebook's slowest model. The notebooks then only evaluate.
"""

from __future__ import annotations


from . import baselines
from .baselines import Cascade
from .config import Config

Variant = dict | Cascade

# Seeds of the notebooks' parameter cells: 3 where a table reports each variant, 5 where the
# paper's small differences are tested (notebooks 05 and 06).
SEEDS = {"02": (0, 1, 2), "03": (0, 1, 2), "04": (0, 1, 2), "05": (0, 1, 2, 3, 4), "06": (0, 1, 2, 3, 4)}

STEP2_ONLY: dict = {"model.use_ranker": False}

# Notebook 02, the paper's Table 3 (task-token mask).
TABLE3: dict[str, Variant] = {
    "Step 2 only (paper design)": STEP2_ONLY,
    "self-attention before cross-attention": {**STEP2_ONLY, "model.step2_order": "self_first"},
    "without the heterogeneous mask": {**STEP2_ONLY, "model.heterogeneous_mask": False},
}

# Notebook 03: Fake Item Tokens and task tokens taken away, and the number of Fake Items.
STEP2_ABLATIONS: dict[str, Variant] = {
    "Step 2 only (paper design)": STEP2_ONLY,
    "without Fake Item Tokens": {**STEP2_ONLY, "model.use_fake_items": False},
    "without Fake Items and task tokens": {**STEP2_ONLY, "model.use_fake_items": False,
                                           "model.use_task_tokens": False},
}
FAKE_ITEM_SWEEP: tuple[int, ...] = (4, 16, 32)


def fake_item_sweep(values: tuple[int, ...] = FAKE_ITEM_SWEEP) -> dict[str, Variant]:
    """The Step-2-only model with ``n`` Fake Item Tokens, for each ``n``."""
    return {f"{n} fake items": {**STEP2_ONLY, "model.n_fake_items": n} for n in values}


# Notebook 04: the ranking decoder (R-Decoder) and what it reads.
RANKER_ABLATIONS: dict[str, Variant] = {
    "Step 2 only (no ranker)": STEP2_ONLY,
    "full OneRanker": {},
    "without Step-2 K/V in the ranker": {"model.ranker_kv": "step1"},
    "ranker on Step 1 only": {"model.use_step2": False},
    "Step-1 generator": dict(baselines.HSTU),
}

# Notebook 05, the paper's Table 2, and the DC loss's temperature and weight.
TABLE2: dict[str, Variant] = {
    "Full OneRanker": {},
    "without DC loss": {"train.gamma": 0.0},
    "without Step-2 K/V in the ranker": {"model.ranker_kv": "step1"},
    "ranker on Step 1 only": {"model.use_step2": False},
    "Step 2 only (no ranker)": STEP2_ONLY,
    "Step 2 without Fake Item Tokens": {**STEP2_ONLY, "model.use_fake_items": False},
    "Step 2 without Fake Items and task tokens": {**STEP2_ONLY, "model.use_fake_items": False,
                                                  "model.use_task_tokens": False},
}
TAU_SWEEP: tuple[float, ...] = (0.25, 1.0, 4.0)
GAMMA_SWEEP: tuple[float, ...] = (0.0, 0.5, 2.0)


def loss_grid(knob: str, values: tuple[float, ...]) -> dict[str, Variant]:
    """The full model at each value of a loss knob of the ``train`` section (``tau``, ``gamma``)."""
    return {f"{knob}={v:g}": {f"train.{knob}": v} for v in values}


# Notebook 06, the paper's Table 1 and its A/B proxy: the baselines, a value-weighted
# OneRanker (a test of the A/B lead) and the interest/value tension swept.
VALUE_WEIGHTED: dict[str, Variant] = {"OneRanker, value-weighted L_MTP": {"train.mtp_weighting": "value"}}
CORR_KNOB = "world.interest_value_corr"
CORR_SWEEP: tuple[float, ...] = (-0.7, -0.3, 0.3)
GMV_PAIR: dict[str, Variant] = {"OneRanker": baselines.BASELINES["OneRanker"],
                                "single-stage fusion": baselines.BASELINES["single-stage fusion"]}


def with_knob(variant: Variant, knob: str, value) -> Variant:
    """The variant with one more override (both models of a cascade get it)."""
    if isinstance(variant, Cascade):
        return Cascade({**variant.generator, knob: value}, {**variant.ranker, knob: value})
    return {**variant, knob: value}


def notebook_variants(notebook: str) -> list[Variant]:
    """Every variant a notebook trains (``"02"`` ... ``"06"``), to be crossed with its seeds."""
    if notebook == "02":
        return list(TABLE3.values())
    if notebook == "03":
        return [*STEP2_ABLATIONS.values(), *fake_item_sweep().values()]
    if notebook == "04":
        return list(RANKER_ABLATIONS.values())
    if notebook == "05":
        return [*TABLE2.values(), *loss_grid("tau", TAU_SWEEP).values(), *loss_grid("gamma", GAMMA_SWEEP).values()]
    if notebook == "06":
        return [*baselines.BASELINES.values(), *VALUE_WEIGHTED.values(),
                *(with_knob(v, CORR_KNOB, c) for c in CORR_SWEEP for v in GMV_PAIR.values())]
    raise ValueError(f"unknown notebook {notebook!r}; the notebooks that train models are {sorted(SEEDS)}")


def configs(variant: Variant, profile: str, seed: int) -> list[Config]:
    """The model configs of one variant and seed (two for a cascade: generator, ranker)."""
    from .config import make_config

    if isinstance(variant, Cascade):
        return [make_config(profile, seed=seed, **variant.generator), make_config(profile, seed=seed, **variant.ranker)]
    return [make_config(profile, seed=seed, **variant)]


def notebook_configs(notebook: str, profile: str, seeds: list[int] | tuple[int, ...] | None = None) -> list[Config]:
    """Every distinct model config one notebook reads, in its order (``seeds`` replaces the
    notebook's own, as ``reproduce --seeds`` does): what it trains from an empty cache."""
    out: dict[str, Config] = {}
    for seed in seeds if seeds is not None else SEEDS[notebook]:
        for variant in notebook_variants(notebook):
            for cfg in configs(variant, profile, seed):
                out.setdefault(cfg.hash(), cfg)
    return list(out.values())


def configs_by_notebook(profile: str, seeds: list[int] | tuple[int, ...] | None = None) -> dict[str, list[Config]]:
    """Each notebook's model configs that no earlier notebook uses, in notebook order
    (``seeds`` replaces each notebook's own seeds, as ``reproduce --seeds`` does): where each
    shared model is first trained, and so what each notebook costs after the earlier ones."""
    seen: set[str] = set()
    out: dict[str, list[Config]] = {}
    for nb in sorted(SEEDS):
        out[nb] = [cfg for cfg in notebook_configs(nb, profile, seeds) if cfg.hash() not in seen]
        seen.update(cfg.hash() for cfg in out[nb])
    return out


def all_configs(profile: str, seeds: list[int] | tuple[int, ...] | None = None) -> list[Config]:
    """Every distinct model config of notebooks 02-06, each once, in notebook order."""
    return [cfg for cfgs in configs_by_notebook(profile, seeds).values() for cfg in cfgs]
