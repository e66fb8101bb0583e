"""The simulated ad market: a world whose ground truth we know.

No public dataset has ad bids *and* true user response probabilities, so the default data
comes from this market (docs/design.md, "The simulated ad market"). Its parts, each driven by
documented knobs of :class:`~oneranker.config.WorldConfig`:

* **Catalogue.** Ads and organic items belong to categories of Zipf sizes and carry latent
  vectors spread around their category centre. Ads have a Zipf popularity, a log-normal
  bid (category dependent) and a log-normal price (value per conversion).
* **Users** hold 1..``max_interests`` interests (latent vectors near a category centre);
  which interest matters depends on the target ad, so target awareness can pay off. Each
  session has one *active* interest that also drives the organic content consumed just before
  the ad request, so recent behaviour says which interest is active.
* **Responses.** ``logit pCTR = b + w_aff * max_k(<u_k, v_i> + boost[k active]) + w_pop * appeal_i
  + context x category``; ``logit pCVR = b' + w_cvr * <w_u, q_i>`` in a separate latent space.
  The intercepts are calibrated so that the mean pCTR / pCVR of random (user,
  popularity-sampled ad) pairs equal ``base_ctr`` / ``base_cvr``.
* **Interest-value tension.** An ad's value tier (which sets its log bid and, partly, its log
  price) has correlation ``interest_value_corr`` with its appeal.
* **Logs** come from a legacy *noisy cascade*: retrieve candidates (popular ads and ads of the
  active interest's category), rank them by a noisy eCPM estimate, show the top
  ``slate_size`` with position bias ``1/pos^eta``; clicks and conversions are sampled.

Only evaluation may call :meth:`World.truth`; models see the logs.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from tqdm.auto import tqdm

from .config import WorldConfig
from .schema import AD, CLICK, CONVERSION, IMPRESSION, ORGANIC, VIEW, Logs

_USER_CHUNK = 8192  # users scored at once: bounds memory at paper scale


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities 1/rank^s over n entries, ranks assigned in random order."""
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(w / w.sum())


def _split_by_weights(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Assign n entries to groups with sizes proportional to weights, every group non-empty."""
    k = len(weights)
    extra = rng.multinomial(n - k, weights)
    return rng.permutation(np.repeat(np.arange(k), extra + 1))


@dataclass
class Truth:
    """True response probabilities and values of (request, ad) pairs; evaluation only."""

    pctr: np.ndarray
    pcvr: np.ndarray
    bid: np.ndarray
    price: np.ndarray

    @property
    def ecpm(self) -> np.ndarray:
        """Expected advertiser payment per impression (bid per conversion, position-free)."""
        return self.bid * self.pctr * self.pcvr

    @property
    def gmv(self) -> np.ndarray:
        """Expected merchandise value per impression."""
        return self.price * self.pctr * self.pcvr


class World:
    """A seeded simulated ad market. Construction is cheap; :meth:`simulate` makes the logs."""

    def __init__(self, cfg: WorldConfig, seed: int) -> None:
        self.cfg, self.seed = cfg, seed
        params_seq, calib_seq, self._logs_seq = np.random.SeedSequence(seed).spawn(3)
        rng = np.random.default_rng(params_seq)
        self._make_catalogue(rng)
        self._make_users(rng)
        self._calibrate(np.random.default_rng(calib_seq))

    # ------------------------------------------------------------------ construction
    def _make_catalogue(self, rng: np.random.Generator) -> None:
        c = self.cfg
        d = c.latent_dim
        self.category_centres = _unit(rng.standard_normal((c.n_categories, d)))
        self.category_weights = zipf_weights(c.n_categories, c.category_zipf, rng)
        self.item_category = _split_by_weights(c.n_items, self.category_weights, rng)
        self.item_latent = _unit(self.category_centres[self.item_category]
                                 + c.item_spread * rng.standard_normal((c.n_items, d)) / np.sqrt(d))
        self.organic_category = _split_by_weights(c.n_organic, self.category_weights, rng)
        self.organic_latent = _unit(self.category_centres[self.organic_category]
                                    + c.item_spread * rng.standard_normal((c.n_organic, d)) / np.sqrt(d))
        self.item_popularity = zipf_weights(c.n_items, c.popularity_zipf, rng)
        log_pop = np.log(self.item_popularity)
        self.item_appeal = (log_pop - log_pop.mean()) / max(log_pop.std(), 1e-12)
        # Value tier: correlated with appeal by the interest/value knob.
        rho = c.interest_value_corr
        self.item_value_tier = rho * self.item_appeal + np.sqrt(1 - rho**2) * rng.standard_normal(c.n_items)
        cat_bid = c.category_bid_sigma * rng.standard_normal(c.n_categories)
        self.item_bid = np.exp(c.bid_log_mean + cat_bid[self.item_category] + c.bid_log_sigma * self.item_value_tier)
        pc = c.price_bid_corr
        price_z = pc * self.item_value_tier + np.sqrt(1 - pc**2) * rng.standard_normal(c.n_items)
        self.item_price = np.exp(c.price_log_mean + c.price_log_sigma * price_z)
        self.item_cvr_vec = _unit(rng.standard_normal((c.n_items, c.cvr_dim)))
        self.context_tables = [c.context_effect * rng.standard_normal((card, c.n_categories))
                               for card in c.n_context_values]
        # Content vectors: what a real system would see (a noisy projection of latent + category).
        cat_onehot = np.eye(c.n_categories)[self.item_category]
        raw = np.concatenate([self.item_latent, cat_onehot], axis=1)
        proj = rng.standard_normal((raw.shape[1], c.content_dim)) / np.sqrt(raw.shape[1])
        self.item_content = (raw @ proj + c.content_noise * rng.standard_normal((c.n_items, c.content_dim))
                             / np.sqrt(c.content_dim)).astype(np.float32)
        # Per-category member lists, for sampling "an item of category k".
        self._cat_items = _members(self.item_category, c.n_categories)
        self._cat_organic = _members(self.organic_category, c.n_categories)

    def _make_users(self, rng: np.random.Generator) -> None:
        c = self.cfg
        n, m, d = c.n_users, c.max_interests, c.latent_dim
        self.user_n_interests = rng.integers(1, m + 1, size=n)
        # m distinct categories per user, drawn by category weight (Gumbel top-k, vectorised).
        gumbel = np.log(self.category_weights)[None, :] - np.log(-np.log(rng.random((n, c.n_categories))))
        cats = np.argsort(-gumbel, axis=1)[:, :m] if m <= c.n_categories else \
            rng.choice(c.n_categories, size=(n, m), p=self.category_weights)
        self.user_interest_cat = np.where(np.arange(m) < self.user_n_interests[:, None], cats, -1)
        noise = c.interest_spread * rng.standard_normal((n, m, d)) / np.sqrt(d)
        self.user_interest_vec = _unit(self.category_centres[cats] + noise)
        self.user_cvr_vec = _unit(rng.standard_normal((n, c.cvr_dim)))
        attrs = np.stack([rng.integers(0, card, size=n) for card in c.n_user_attr_values], axis=1)
        reveal = rng.random(n) < c.user_attr_signal
        attrs[reveal, -1] = cats[reveal, 0] % c.n_user_attr_values[-1]
        self.user_attrs = attrs

    def _calibrate(self, rng: np.random.Generator, n_pairs: int = 20_000) -> None:
        """Solve the intercepts so that mean pCTR / pCVR hit base_ctr / base_cvr."""
        c = self.cfg
        self.ctr_bias, self.cvr_bias = 0.0, 0.0
        users = rng.integers(0, c.n_users, size=n_pairs)
        items = rng.choice(c.n_items, size=(n_pairs, 1), p=self.item_popularity)
        active = self.sample_active_interest(users, rng)
        context = self.sample_context(n_pairs, rng)
        ctr0 = self._ctr_logit(users, items, active, context)
        cvr0 = self._cvr_logit(users, items)
        self.ctr_bias = brentq(lambda b: _sigmoid(ctr0 + b).mean() - c.base_ctr, -30.0, 30.0)
        self.cvr_bias = brentq(lambda b: _sigmoid(cvr0 + b).mean() - c.base_cvr, -30.0, 30.0)

    # ------------------------------------------------------------------ response model
    def sample_active_interest(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly chosen interest slot of each user (its active interest this session)."""
        return np.floor(rng.random(len(users)) * self.user_n_interests[users]).astype(np.int64)

    def sample_context(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, card, size=n) for card in self.cfg.n_context_values], axis=1)

    def _ctr_logit(self, users: np.ndarray, items: np.ndarray | None, active: np.ndarray,
                   context: np.ndarray) -> np.ndarray:
        """users [B], items [B, N] (None: the whole catalogue for every request, without
        gathering a [B, N, d] copy of it), active [B], context [B, F] -> logits [B, N]."""
        c = self.cfg
        everything = items is None
        latent = self.item_latent if everything else self.item_latent[items]
        sims = np.einsum("bmd,nd->bnm" if everything else "bmd,bnd->bnm", self.user_interest_vec[users], latent)
        m = c.max_interests
        valid = np.arange(m)[None, :] < self.user_n_interests[users][:, None]           # [B, M]
        bonus = c.session_boost * (np.arange(m)[None, :] == active[:, None])             # [B, M]
        sims = np.where(valid[:, None, :], sims + bonus[:, None, :], -np.inf).max(axis=-1)
        cats = self.item_category if everything else self.item_category[items]
        rows = slice(None) if everything else np.arange(len(users))[:, None]
        ctx = sum(table[context[:, f]][rows, cats] for f, table in enumerate(self.context_tables))
        appeal = self.item_appeal if everything else self.item_appeal[items]
        return self.ctr_bias + c.affinity_weight * sims + c.popularity_weight * appeal + ctx

    def _cvr_logit(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        if items is None:
            sim = np.einsum("bd,nd->bn", self.user_cvr_vec[users], self.item_cvr_vec)
        else:
            sim = np.einsum("bd,bnd->bn", self.user_cvr_vec[users], self.item_cvr_vec[items])
        return self.cvr_bias + self.cfg.cvr_weight * sim

    def truth(self, users: np.ndarray, items: np.ndarray | None, active: np.ndarray, context: np.ndarray) -> Truth:
        """True pCTR, pCVR, bid and price of ads ``items [B, N]`` at requests
        (``users [B]``, ``active [B]`` interest slot, ``context [B, F]``). Evaluation only.
        ``items=None``: every ad of the catalogue for every request, the same numbers bit for
        bit as the catalogue given as ``items`` (tests/test_world.py), about 5x faster at the
        paper profile's 20k ads (no gathered [B, N, d] copies of the ads' vectors)."""
        users = np.asarray(users)
        if items is not None:
            items = np.asarray(items)
            if items.ndim == 1:
                items = items[:, None]
        shape = (len(users), self.cfg.n_items) if items is None else items.shape
        ctr = np.concatenate([_sigmoid(self._ctr_logit(users[s], None if items is None else items[s],
                                                        np.asarray(active)[s], np.asarray(context)[s]))
                              for s in _chunks(len(users))]) if len(users) else np.zeros(shape)
        cvr = _sigmoid(self._cvr_logit(users, items))
        if items is None:
            bid, price = (np.broadcast_to(v, shape) for v in (self.item_bid, self.item_price))
        else:
            bid, price = self.item_bid[items], self.item_price[items]
        return Truth(pctr=ctr, pcvr=cvr, bid=bid, price=price)

    # ------------------------------------------------------------------ logging
    def _requests_per_user(self, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        p = 1.0 / max(1.0, c.mean_requests - c.min_requests + 1.0)
        return np.minimum(c.min_requests - 1 + rng.geometric(p, size=c.n_users), c.max_requests)

    def _sample_in_category(self, cats: np.ndarray, members: tuple[np.ndarray, np.ndarray],
                            uniform: np.ndarray) -> np.ndarray:
        """A member of each category in ``cats``, picked by the uniforms ``uniform`` (same shape)."""
        offsets, order = members
        size = offsets[cats + 1] - offsets[cats]
        return order[offsets[cats] + np.floor(uniform * size).astype(np.int64)]

    def _serve_draws(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Every random number the legacy cascade needs for ``n`` requests, in the order the
        simulation has always drawn them: drawing first lets the arithmetic of several chunks
        of users run in parallel threads while the logs stay bit for bit the same."""
        c = self.cfg
        n_int = int(round(c.n_retrieval * c.retrieval_interest_share))
        return {"interest": rng.random((n, n_int)),
                "popular": rng.choice(c.n_items, size=(n, c.n_retrieval - n_int), p=self.item_popularity),
                "ctr_noise": rng.standard_normal((n, c.n_retrieval)),
                "cvr_noise": rng.standard_normal((n, c.n_retrieval)),
                "click": rng.random((n, c.slate_size)), "conv": rng.random((n, c.slate_size))}

    def _serve(self, users: np.ndarray, active: np.ndarray, context: np.ndarray,
               draws: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The legacy cascade for one request per user, from its random numbers ``draws``
        (:meth:`_serve_draws`): slate [B, S], clicks, conversions."""
        c = self.cfg
        n_int = draws["interest"].shape[1]
        cats = self.user_interest_cat[users, active]
        cand = np.concatenate([
            self._sample_in_category(np.repeat(cats[:, None], n_int, axis=1), self._cat_items, draws["interest"]),
            draws["popular"]], axis=1)
        cand.sort(axis=1)
        dup = np.zeros(cand.shape, dtype=bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
        ctr_logit = self._ctr_logit(users, cand, active, context)
        cvr_logit = self._cvr_logit(users, cand)
        est = (self.item_bid[cand] * _sigmoid(ctr_logit + c.logging_noise * draws["ctr_noise"])
               * _sigmoid(cvr_logit + c.logging_noise * draws["cvr_noise"]))
        est[dup] = -np.inf
        top = np.argsort(-est, axis=1, kind="stable")[:, : c.slate_size]
        rows = np.arange(len(users))[:, None]
        slate = cand[rows, top]
        examine = 1.0 / np.arange(1, c.slate_size + 1) ** c.position_bias
        click = draws["click"] < examine * _sigmoid(ctr_logit[rows, top])
        conv = click & (draws["conv"] < _sigmoid(cvr_logit[rows, top]))
        return slate, click, conv

    def simulate(self, progress: bool = False) -> Logs:
        """Run the logging policy over every user's sessions; deterministic for the seed."""
        c = self.cfg
        rng = np.random.default_rng(self._logs_seq)
        n_req = self._requests_per_user(rng)
        toks: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "t", "order", "type", "item", "action")}
        reqs: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "t", "n_org", "active", "context", "slate",
                                                              "click", "conv")}
        # Threads for the chunks' arithmetic: numpy releases the GIL there; the draws stay in one stream.
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            for t in tqdm(range(int(n_req.max())), desc="simulating sessions", disable=not progress):
                users = np.flatnonzero(n_req > t)
                active = self.sample_active_interest(users, rng)
                context = self.sample_context(len(users), rng)
                org_items, org_users, org_order, n_org = self._organic_session(users, active, rng)
                chunks = _chunks(len(users))
                draws = [self._serve_draws(s.stop - s.start, rng) for s in chunks]
                parts = list(pool.map(lambda sd: self._serve(users[sd[0]], active[sd[0]], context[sd[0]], sd[1]),
                                      zip(chunks, draws)))
                slate, click, conv = (np.concatenate(p) for p in zip(*parts))
                action = np.where(conv, CONVERSION, np.where(click, CLICK, IMPRESSION))
                S = c.slate_size
                for key, val in (("user", np.concatenate([org_users, np.repeat(users, S)])),
                                 ("t", np.full(len(org_users) + len(users) * S, t)),
                                 ("order", np.concatenate([org_order, (n_org[:, None] + np.arange(S)).ravel()])),
                                 ("type", np.concatenate([np.full(len(org_users), ORGANIC), np.full(len(users) * S, AD)])),
                                 ("item", np.concatenate([org_items, slate.ravel()])),
                                 ("action", np.concatenate([np.full(len(org_users), VIEW), action.ravel()]))):
                    toks[key].append(val)
                for key, val in (("user", users), ("t", np.full(len(users), t)), ("n_org", n_org), ("active", active),
                                 ("context", context), ("slate", slate), ("click", click), ("conv", conv)):
                    reqs[key].append(val)
        return self._assemble(toks, reqs)

    def _organic_session(self, users: np.ndarray, active: np.ndarray, rng: np.random.Generator):
        """Organic items consumed before the ad request: mostly from the active interest."""
        n_org = rng.poisson(self.cfg.organic_per_request, size=len(users))
        org_users = np.repeat(users, n_org)
        cats = np.repeat(self.user_interest_cat[users, active], n_org)
        items = self._sample_in_category(cats, self._cat_organic, rng.random(cats.shape))
        explore = rng.random(len(items)) < 0.1   # a tenth of organic views are off-interest
        items[explore] = rng.integers(0, self.cfg.n_organic, size=int(explore.sum()))
        starts = np.repeat(np.cumsum(n_org) - n_org, n_org)
        order = np.arange(len(org_users)) - starts
        return items, org_users, order, n_org

    def _assemble(self, toks: dict, reqs: dict) -> Logs:
        c = self.cfg
        t = {k: np.concatenate(v) for k, v in toks.items()}
        r = {k: np.concatenate(v) for k, v in reqs.items()}
        order = np.lexsort((t["order"], t["t"], t["user"]))
        stream_offsets = np.concatenate([[0], np.cumsum(np.bincount(t["user"], minlength=c.n_users))])
        rorder = np.lexsort((r["t"], r["user"]))
        r = {k: v[rorder] for k, v in r.items()}
        per_req = r["n_org"] + c.slate_size
        first = np.r_[True, r["user"][1:] != r["user"][:-1]]
        csum = np.cumsum(per_req)
        start_of_user = np.maximum.accumulate(np.where(first, csum - per_req, 0))
        hist_end = csum - per_req - start_of_user + r["n_org"]
        n = len(r["user"])
        S = c.slate_size
        return Logs(
            source="adworld",
            item_category=self.item_category.astype(np.int64), item_bid=self.item_bid, item_price=self.item_price,
            item_content=self.item_content, n_organic=c.n_organic,
            user_attrs=self.user_attrs.astype(np.int64), user_attr_cardinality=tuple(c.n_user_attr_values),
            stream_offsets=stream_offsets.astype(np.int64), tok_type=t["type"][order].astype(np.int8),
            tok_item=t["item"][order].astype(np.int32), tok_action=t["action"][order].astype(np.int8),
            req_user=r["user"].astype(np.int64), req_hist_end=hist_end.astype(np.int64),
            req_context=r["context"].astype(np.int64), context_cardinality=tuple(c.n_context_values),
            imp_offsets=np.arange(0, n * S + 1, S, dtype=np.int64), imp_item=r["slate"].ravel().astype(np.int64),
            imp_position=np.tile(np.arange(1, S + 1), n).astype(np.int64),
            imp_click=r["click"].ravel().astype(np.int8), imp_conv=r["conv"].ravel().astype(np.int8),
            req_oracle=r["active"].astype(np.int64),
            notes={"world_seed": self.seed})

    # ------------------------------------------------------------------ measurements
    def item_mean_pctr(self, n_users: int = 500, seed: int = 0) -> np.ndarray:
        """Mean true pCTR of every ad over a sample of users, sessions and contexts."""
        rng = np.random.default_rng(seed)
        users = rng.choice(self.cfg.n_users, size=min(n_users, self.cfg.n_users), replace=False)
        active = self.sample_active_interest(users, rng)
        context = self.sample_context(len(users), rng)
        return self.truth(users, None, active, context).pctr.mean(axis=0)

    def interest_value_correlation(self, n_users: int = 500, seed: int = 0) -> float:
        """Measured Pearson correlation between an ad's interest (logit of its mean true pCTR)
        and its value (log bid): what the ``interest_value_corr`` knob is meant to move."""
        p = self.item_mean_pctr(n_users, seed)
        return float(np.corrcoef(np.log(p / (1 - p)), np.log(self.item_bid))[0, 1])


def _members(category: np.ndarray, n_categories: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (offsets, member ids) of the items of each category."""
    order = np.argsort(category, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(category, minlength=n_categories))])
    return offsets, order


def _chunks(n: int, size: int | None = None) -> list[slice]:
    """Slices of at most ``size`` (default ``_USER_CHUNK``) users. The chunk size is part of
    the simulation's definition: each chunk draws its random numbers in turn."""
    size = size or _USER_CHUNK
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
