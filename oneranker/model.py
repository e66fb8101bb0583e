"""OneRanker: generation and ranking in one forward pass of three steps (docs/paper.md).

Reading order: :class:`ItemEmbedding` (ads as semantic-ID code embeddings plus an ID embedding),
:class:`TokenEmbedding` (the user journey), :class:`GDecoder` (Step 1), :class:`FakeItemTokens`
and :class:`Step2` (value-aware multi-task decoupling with the dual-channel score),
:class:`RDecoder` (Step 3, with K/V pass-through), and :class:`OneRanker` tying them together.

Every row of the paper's ablation tables is a switch of :class:`~oneranker.config.ModelConfig`
(``use_step2``, ``use_task_tokens``, ``use_fake_items``, ``heterogeneous_mask``,
``step2_order``, ``use_ranker``, ``ranker_kv``), never a second model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import masks
from .config import ModelConfig
from .layers import CrossSelfBlock, DecoderBlock, Mask
from .schema import ACTIONS, AD, CONTEXT, ORGANIC, TOKEN_TYPES, USER, Vocab


def _embedding(n: int, d_model: int, std: float) -> nn.Embedding:
    """An embedding table initialised N(0, std^2) (``model.embedding_init_std``). At std 1,
    PyTorch's own initialisation is kept as it is (no second draw), so that models of the
    default config are bit for bit those trained before the knob existed."""
    emb = nn.Embedding(n, d_model)
    if std != 1.0:
        nn.init.normal_(emb.weight, std=std)
    return emb


class ItemEmbedding(nn.Module):
    """An ad's embedding, from the parts ``representation`` names:

    * ``sid``: the sum of its semantic-ID code embeddings (one table per level, plus the dedup
      digit), so ads sharing a code prefix share parameters (the paper's tokenisation);
    * ``id``: a per-ad embedding and a per-ad output bias, so that what content does not
      hold (an ad's popularity, its own appeal) can still be learned;
    * ``sid+id``: both.

    It also holds each ad's standardised log bid (:meth:`bid_feature`), a feature the value
    heads and the ranker read (``model.value_features``)."""

    def __init__(self, sid_codes: np.ndarray, digits: tuple[int, ...], d_model: int,
                 representation: str = "sid", item_bid: np.ndarray | None = None, init_std: float = 1.0) -> None:
        super().__init__()
        if representation not in ("sid", "id", "sid+id"):
            raise ValueError(f"item representation {representation!r}: choose sid, id or sid+id")
        codes = torch.tensor(np.asarray(sid_codes), dtype=torch.long)
        self.register_buffer("codes", codes, persistent=False)
        self.representation = representation
        use_sid, use_id = "sid" in representation, "id" in representation.split("+")
        self.tables = nn.ModuleList(_embedding(n, d_model, init_std) for n in digits) if use_sid else nn.ModuleList()
        self.ids = _embedding(codes.shape[0], d_model, init_std) if use_id else None
        self.output_bias = nn.Parameter(torch.zeros(codes.shape[0])) if use_id else None
        log_bid = np.zeros(codes.shape[0]) if item_bid is None else np.log(np.asarray(item_bid, dtype=np.float64))
        if len(log_bid) != codes.shape[0]:
            raise ValueError(f"item_bid has {len(log_bid)} entries for {codes.shape[0]} ads")
        std = log_bid.std()
        z = (log_bid - log_bid.mean()) / (std if std > 0 else 1.0)
        self.register_buffer("log_bid", torch.tensor(z, dtype=torch.float32), persistent=False)

    @property
    def n_items(self) -> int:
        return self.codes.shape[0]

    def forward(self, items: Tensor | None = None) -> Tensor:
        """Embeddings of ``items`` (any shape of ad ids), or of the whole catalogue."""
        idx = None if items is None else items.clamp(min=0)
        out = 0
        if len(self.tables):
            codes = self.codes if idx is None else self.codes[idx]
            out = sum(t(codes[..., lvl]) for lvl, t in enumerate(self.tables))
        if self.ids is not None:
            out = out + (self.ids.weight if idx is None else self.ids(idx))
        return out

    def bias(self, items: Tensor | None = None) -> Tensor | float:
        """Per-ad output bias (0 without ID embeddings): popularity as one learned number."""
        if self.output_bias is None:
            return 0.0
        return self.output_bias if items is None else self.output_bias[items.clamp(min=0)]

    def bid_feature(self, items: Tensor | None = None) -> Tensor:
        """Standardised log bid of ``items`` (or of the catalogue)."""
        return self.log_bid if items is None else self.log_bid[items.clamp(min=0)]


class TokenEmbedding(nn.Module):
    """Embeds ``[user attributes | context | history]``: a table per token type (ads through
    :class:`ItemEmbedding`), plus action (impression/click/conversion), type and position.

    ``positions="recency"`` numbers history tokens back from the newest one (0 = the
    token just before the request), so that "the current session" is the same positions in
    every example whatever the history's length; the prefix tokens get positions of their own
    after the history's. ``"absolute"`` (default) numbers tokens from the start of the sequence.

    Two ways to look a token up, which compute the same embeddings (tests/test_model.py):
    ``"select"``, the reference, looks every token up in every type's table and keeps the one
    of its type; ``"gather"`` stacks the tables (and the catalogue's ad embeddings) into one
    and looks each token up once. On a GPU the select way cost a dozen [tokens, d] lookups and
    as many backward passes per step, each summing ~100k gradient rows mostly into row 0;
    the gather way costs one, plus the catalogue's own (20k rows at paper scale). ``lookup="auto"`` (default): gather on CUDA, select elsewhere,
    so that CPU models stay bit for bit those trained before the gather way existed (its
    gradients add the same rows in another order)."""

    LOOKUPS = ("auto", "select", "gather")

    def __init__(self, vocab: Vocab, d_model: int, max_len: int, positions: str = "absolute",
                 init_std: float = 1.0) -> None:
        super().__init__()
        if positions not in ("recency", "absolute"):
            raise ValueError(f"positions {positions!r}: choose recency or absolute")
        self.user = _embedding(vocab.n_user_tokens, d_model, init_std)
        self.context = _embedding(vocab.n_context_tokens, d_model, init_std)
        self.organic = _embedding(max(1, vocab.n_organic), d_model, init_std)
        self.action = _embedding(len(ACTIONS), d_model, init_std)
        self.type_emb = _embedding(len(TOKEN_TYPES), d_model, init_std)
        self.position = _embedding(max_len, d_model, init_std)
        self.max_len, self.positions = max_len, positions
        self.lookup = "auto"   # how tokens are looked up (class docstring); tests and benchmarks set it

    def position_ids(self, lengths: Tensor, prefix: Tensor, L: int) -> Tensor:
        """[B, L] position of every token (see the class docstring); padding gets 0."""
        i = torch.arange(L, device=lengths.device)[None]
        if self.positions == "absolute":
            return i.expand(lengths.shape[0], -1)
        back = lengths[:, None] - 1 - i                     # 0 = newest history token
        in_prefix = i < prefix[:, None]
        prefix_pos = self.max_len - prefix[:, None] + i     # the table's last rows
        return torch.where(in_prefix, prefix_pos, back.clamp(min=0))

    def forward(self, tok_type: Tensor, tok_id: Tensor, tok_action: Tensor, items: ItemEmbedding,
                lengths: Tensor | None = None, prefix: Tensor | None = None) -> Tensor:
        B, L = tok_type.shape
        if L > self.max_len:
            raise ValueError(f"sequence of {L} tokens exceeds the model's max_len={self.max_len}")
        if self.lookup not in self.LOOKUPS:
            raise ValueError(f"token lookup {self.lookup!r}: choose one of {', '.join(self.LOOKUPS)}")
        gather = self.lookup == "gather" or (self.lookup == "auto" and tok_type.is_cuda)
        x = self._gathered(tok_type, tok_id, items) if gather else self._selected(tok_type, tok_id, items)
        if lengths is None:
            lengths = (tok_type != 0).sum(1)
        if prefix is None:
            prefix = torch.zeros_like(lengths)
        if self.positions == "absolute":   # one row per position, broadcast over the batch
            pos = self.position(torch.arange(L, device=tok_type.device))[None]
        else:
            pos = self.position(self.position_ids(lengths, prefix, L))
        return x + self.action(tok_action) + self.type_emb(tok_type) + pos

    def _by_type(self) -> dict[int, nn.Embedding]:
        return {USER: self.user, CONTEXT: self.context, ORGANIC: self.organic}

    def _selected(self, tok_type: Tensor, tok_id: Tensor, items: ItemEmbedding) -> Tensor:
        """[B, L, d] token embeddings, the reference way: every token looked up in every type's
        table, each keeping its own type's row (0 for padding)."""
        x = torch.zeros(*tok_type.shape, self.position.embedding_dim, device=tok_type.device)
        for t, table in self._by_type().items():
            sel = tok_type == t
            x = torch.where(sel[..., None], table(torch.where(sel, tok_id, 0)), x)
        ad = tok_type == AD
        return torch.where(ad[..., None], items(torch.where(ad, tok_id, 0)), x)

    def _gathered(self, tok_type: Tensor, tok_id: Tensor, items: ItemEmbedding) -> Tensor:
        """[B, L, d] token embeddings, one lookup per token: in one table stacking a zero row
        (padding), the user, context and organic tables and the catalogue's ad embeddings
        (each ad's row computed once, the same sum as :meth:`ItemEmbedding.forward`'s)."""
        parts = [torch.zeros(1, self.position.embedding_dim, device=tok_type.device)]
        row = torch.zeros_like(tok_id)
        start = 1
        for t, weight in [*((t, e.weight) for t, e in self._by_type().items()), (AD, items())]:
            ids = tok_id.clamp(min=0) if t == AD else tok_id      # as ItemEmbedding clamps ad ids
            row = torch.where(tok_type == t, ids + start, row)
            parts.append(weight)
            start += weight.shape[0]
        return F.embedding(row, torch.cat(parts))


@dataclass
class State:
    """What one forward pass computes and what later steps and generation reuse."""

    h1: Tensor                  # Step-1 hidden states [B, L, d]
    key_pad: Tensor             # True where h1 is a real token [B, L]
    last: Tensor                # Step-1 state at the last real token [B, d]
    tasks: Tensor | None        # Step-2 task-token outputs [B, T, d]
    fakes: Tensor | None        # Step-2 fake-item outputs [B, F, d]


class GDecoder(nn.Module):
    """Step 1: decoder-only transformer over the user journey; causal over behaviour,
    bidirectional inside the user/context prefix (GPR's mask, :func:`masks.step1_dense`)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(DecoderBlock(cfg.d_model, cfg.n_heads, cfg.mlp_ratio, cfg.dropout)
                                    for _ in range(cfg.step1_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: Tensor, mask: Mask) -> Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


class FakeItemTokens(nn.Module):
    """Fake Item Tokens: k-means centroids of the item-embedding space (the paper's 32).

    The centroids are a buffer, recomputed from the current item embeddings by
    :meth:`refresh` (the trainer calls it before each epoch): the generator then "looks at"
    the shape of the catalogue, a coarse form of target awareness. A learned type embedding
    tells the transformer these queries are items, not tasks.
    """

    def __init__(self, n_fake: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("centroids", torch.randn(n_fake, d_model) * 0.02)
        self.type_emb = nn.Parameter(torch.zeros(d_model))

    @torch.no_grad()
    def refresh(self, item_embeddings: Tensor, seed: int) -> None:
        from sklearn.cluster import KMeans

        x = item_embeddings.detach().float().cpu().numpy()
        km = KMeans(n_clusters=len(self.centroids), n_init=1, random_state=seed).fit(x)
        self.centroids.copy_(torch.as_tensor(km.cluster_centers_, dtype=self.centroids.dtype))

    def forward(self, batch_size: int) -> Tensor:
        return (self.centroids + self.type_emb)[None].expand(batch_size, -1, -1)

    def item_affinity(self, item_embeddings: Tensor) -> Tensor:
        """cos(item, centroid_l) for every item and centroid: the item side of the
        dual-channel score [..., F]."""
        return F.normalize(item_embeddings, dim=-1) @ F.normalize(self.centroids, dim=-1).T


class Step2(nn.Module):
    """Value-aware multi-task decoupling: task tokens (interest heads in funnel order, then
    bagged value heads) and Fake Item Tokens cross-attend to H1, then self-attend under the
    heterogeneous mask; each task's dual-channel user vector scores the whole catalogue."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.n_tasks = cfg.n_interest_tasks + cfg.n_value_tasks if cfg.use_task_tokens else 1
        self.task_tokens = nn.Parameter(torch.randn(self.n_tasks, d) * 0.02)
        self.fake = FakeItemTokens(cfg.n_fake_items, d) if cfg.use_fake_items else None
        self.blocks = nn.ModuleList(
            CrossSelfBlock(d, cfg.n_heads, cfg.mlp_ratio, cfg.dropout, self_first=cfg.step2_order == "self_first")
            for _ in range(cfg.step2_layers))
        self.norm = nn.LayerNorm(d)
        # s_il = MLP([task_i ; fake_l]): the per-centroid preference of the dual channel.
        self.preference = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1)) if self.fake else None
        n_int = cfg.n_interest_tasks if cfg.use_task_tokens else 1
        n_val = cfg.n_value_tasks if cfg.use_task_tokens else 0
        n_fake = cfg.n_fake_items if cfg.use_fake_items else 0
        self.register_buffer("self_mask", masks.step2_dense(n_int, n_val, n_fake, cfg.heterogeneous_mask),
                             persistent=False)
        if cfg.step2_init == "zero":
            self.zero_residual_branches()

    @torch.no_grad()
    def zero_residual_branches(self) -> None:
        """``model.step2_init='zero'``: every residual branch of the Step-2 blocks (the output
        projections of both attentions and the MLP's last layer) and the preference MLP's last
        layer start at 0. They still learn: a zero output layer gets the gradient of its
        inputs, and the layers before it get theirs from the second step on. Done after the
        default initialisation, so that the random stream, and every other weight, is the
        same as with ``'default'``."""
        layers = [lin for b in self.blocks for lin in (b.cross.out, b.self_attn.out, b.mlp[2])]
        if self.preference is not None:
            layers.append(self.preference[-1])
        for lin in layers:
            lin.weight.zero_()
            lin.bias.zero_()

    def head_tokens(self) -> tuple[list[int], list[int]]:
        """Which task output feeds each interest head and each value head."""
        c = self.cfg
        if not c.use_task_tokens:  # one shared query: every head reads the same output
            return [0] * c.n_interest_tasks, [0] * c.n_value_tasks
        return list(range(c.n_interest_tasks)), list(range(c.n_interest_tasks, self.n_tasks))

    def head_scores(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """The task outputs' scores [B, T, N] as (interest [B, n_interest, N], value [B, n_value,
        N]), as :meth:`head_tokens` assigns them. Sliced and expanded, not indexed by the token
        lists: indexing a CUDA tensor by a Python list copies the list to the GPU and makes the
        host wait, and the training step must not."""
        c = self.cfg
        if not c.use_task_tokens:
            shared = scores[:, :1]
            return shared.expand(-1, c.n_interest_tasks, -1), shared.expand(-1, c.n_value_tasks, -1)
        return scores[:, :c.n_interest_tasks], scores[:, c.n_interest_tasks:self.n_tasks]

    def queries(self, last: Tensor) -> Tensor:
        """The task tokens' inputs [B, T, d]: their learned vectors, plus the Step-1 state at the
        newest history token ``last`` [B, d] when ``model.task_query='learned+last'``."""
        q = self.task_tokens[None].expand(last.shape[0], -1, -1)
        return q + last[:, None] if self.cfg.task_query == "learned+last" else q

    def forward(self, h1: Tensor, key_pad: Tensor, last: Tensor) -> tuple[Tensor, Tensor | None]:
        B = h1.shape[0]
        q = self.queries(last)
        if self.fake is not None:
            q = torch.cat([q, self.fake(B)], dim=1)
        cross = Mask(dense=key_pad[:, None, :])
        self_mask = Mask(dense=self.self_mask[None])
        for block in self.blocks:
            q = block(q, h1, cross, self_mask)
        q = self.norm(q)
        return q[:, : self.n_tasks], (q[:, self.n_tasks:] if self.fake is not None else None)

    def centroid_preferences(self, tasks: Tensor, fakes: Tensor) -> Tensor:
        """s_il = MLP([task_i ; fake_l]) [B, T, F]: how much task i of this request likes the
        catalogue region around centroid l (notebook 03 compares it with the market's truth)."""
        T, Fn = tasks.shape[1], fakes.shape[1]
        pairs = torch.cat([tasks[:, :, None].expand(-1, -1, Fn, -1), fakes[:, None].expand(-1, T, -1, -1)], dim=-1)
        return self.preference(pairs).squeeze(-1)

    def scores(self, tasks: Tensor, fakes: Tensor | None, item_emb: Tensor) -> Tensor:
        """Dual-channel scores [B, T, N]: <task_i, e_n> + sum_l s_il cos(e_n, centroid_l)."""
        semantic = tasks @ item_emb.T
        if self.fake is None:
            return semantic
        s = self.centroid_preferences(tasks, fakes)                 # [B, T, F]
        return semantic + s @ self.fake.item_affinity(item_emb).T


class RDecoder(nn.Module):
    """Step 3: a ranking token plus n candidates cross-attend to the passed-through Step-1
    states (and Step-2 outputs), then self-attend so that each candidate sees the ranking token
    and itself only; an MLP maps each candidate to a score."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.rank_token = nn.Parameter(torch.randn(1, d) * 0.02)
        self.cand_type = nn.Parameter(torch.zeros(d))
        self.blocks = nn.ModuleList(CrossSelfBlock(d, cfg.n_heads, cfg.mlp_ratio, cfg.dropout)
                                    for _ in range(cfg.step3_layers))
        self.norm = nn.LayerNorm(d)
        self.score = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        self.bid_proj = nn.Linear(1, d) if cfg.value_features else None

    def memory_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """K/V of the memory for every layer: computed once per request, reused for any
        number of candidates (the point of K/V pass-through)."""
        return [b.project_memory(memory) for b in self.blocks]

    def forward(self, cand_emb: Tensor, memory: Tensor | None, memory_pad: Tensor,
                cache: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        B, C, _ = cand_emb.shape
        x = torch.cat([self.rank_token[None].expand(B, -1, -1), cand_emb + self.cand_type], dim=1)
        cross = Mask(dense=memory_pad[:, None, :])
        self_mask = Mask(dense=masks.step3_dense(C, cand_emb.device)[None])
        for i, block in enumerate(self.blocks):
            x = block(x, memory, cross, self_mask, cached_kv=None if cache is None else cache[i])
        return self.score(self.norm(x[:, 1:])).squeeze(-1)


class OneRanker(nn.Module):
    """The whole model. ``encode`` runs Steps 1-2 once per request; ``generator_scores`` gives
    the heads' catalogue scores; ``rank`` runs Step 3 on any candidate set."""

    def __init__(self, cfg: ModelConfig, vocab: Vocab, sid_codes: np.ndarray, max_history_len: int,
                 item_bid: np.ndarray | None = None) -> None:
        super().__init__()
        self.cfg, self.vocab = cfg, vocab
        d = cfg.d_model
        std = cfg.embedding_init_std
        self.items = ItemEmbedding(sid_codes, vocab.sid_digits, d, cfg.item_representation, item_bid, std)
        self.embed = TokenEmbedding(vocab, d, vocab.prefix_len + max_history_len, cfg.positions, std)
        # model.value_features: the value heads (where they have outputs of their own) add
        # w_j x standardised log bid to their scores (bid is part of what pays); the ranker adds
        # a projection of it to each candidate.
        self.value_bid_weight = nn.Parameter(torch.zeros(cfg.n_value_tasks)) if cfg.value_features else None
        self.step1 = GDecoder(cfg)
        self.step2 = Step2(cfg) if cfg.use_step2 else None
        self.rdecoder = RDecoder(cfg) if cfg.use_ranker else None
        self.drop = nn.Dropout(cfg.dropout)
        self._kernel: str | None = None   # set only inside `with model.attention_kernel(...)`

    @contextlib.contextmanager
    def attention_kernel(self, kernel: str):
        """Run the G-Decoder with ``kernel`` ('sdpa' or 'flex') instead of the configured one
        inside the ``with`` block, and restore it after, also on error. The two compute the
        same function; e.g. the FLOP counter cannot see inside FlexAttention
        (``profiling.count_flops`` counts the dense twin)."""
        if kernel not in ("sdpa", "flex"):
            raise ValueError(f"attention kernel {kernel!r}: choose 'sdpa' or 'flex'")
        previous, self._kernel = self._kernel, kernel
        try:
            yield self
        finally:
            self._kernel = previous

    # ---------------------------------------------------------------- Steps 1 and 2
    def encode(self, batch: dict[str, Tensor], mask: Mask | None = None) -> State:
        """Steps 1 and 2 on a batch. ``mask``: Step 1's, as :meth:`step1_mask` builds it for this
        batch, built here when not given. A caller that compiles the rest passes it in, built
        outside the compiled graph: on the H200, FlexAttention's kernel with its block mask built
        inside the same compiled graph read out of bounds (docs/paper_profile.md, "GPU benchmarks"). A given mask
        is trusted: the checks of lengths and prefix are :meth:`step1_mask`'s, where it was built."""
        tok_type = batch["tok_type"]
        B, L = tok_type.shape
        lengths, prefix = batch["length"], batch["prefix_len"]
        if mask is None:
            mask = self.step1_mask(lengths, prefix, L)   # first: it checks lengths and prefix
        x = self.drop(self.embed(tok_type, batch["tok_id"], batch["tok_action"], self.items, lengths, prefix))
        h1 = self.step1(x, mask)
        key_pad = masks.key_padding(lengths, L)
        last = h1[torch.arange(B, device=h1.device), lengths - 1]
        tasks = fakes = None
        if self.step2 is not None:
            tasks, fakes = self.step2(h1, key_pad, last)
        return State(h1=h1, key_pad=key_pad, last=last, tasks=tasks, fakes=fakes)

    def step1_mask(self, lengths: Tensor, prefix: Tensor, L: int) -> Mask:
        """The G-Decoder mask in the form of the configured kernel ('auto': FlexAttention on
        CUDA, dense SDPA on CPU and for heads narrower than 16, which compiled FlexAttention
        does not support). Steps 2 and 3 attend over a few dozen tokens and keep SDPA."""
        kernel = self._kernel or self.cfg.attention
        if kernel == "auto":
            kernel = "flex" if lengths.is_cuda and self.cfg.d_model // self.cfg.n_heads >= 16 else "sdpa"
        if kernel == "flex":
            compile = self.cfg.compile_block_mask and lengths.is_cuda
            return Mask(block=masks.step1_block_mask(lengths, prefix, L, compile=compile))
        return Mask(dense=masks.step1_dense(lengths, prefix, L))

    def generator_scores(self, state: State) -> tuple[Tensor, Tensor]:
        """(interest [B, n_interest, N], value [B, n_value, N]) catalogue scores. Without Step 2
        every head is the plain Step-1 next-item score <h1_last, e_n>."""
        item_emb = self.items()
        bias = self.items.bias()
        c = self.cfg
        if self.step2 is None:
            s = (state.last @ item_emb.T + bias)[:, None]
            interest, value = s.expand(-1, c.n_interest_tasks, -1), s.expand(-1, c.n_value_tasks, -1)
        else:
            interest, value = self.step2.head_scores(self.step2.scores(state.tasks, state.fakes, item_emb) + bias)
        if self.value_bid_weight is not None and self.has_value_heads:
            value = value + self.value_bid_weight[:, None] * self.items.bid_feature()
        return interest, value

    @property
    def has_value_heads(self) -> bool:
        """Whether the value heads have outputs of their own (Step 2 with task tokens). A
        single-head generator (no Step 2, or one shared query) has one output space: the bid
        feature would only tilt its one next-item list towards expensive ads."""
        return self.step2 is not None and self.cfg.use_task_tokens

    @staticmethod
    def retrieval_score(interest: Tensor, value: Tensor) -> Tensor:
        """One generator score per ad [B, N]: the bagged value heads' mean. Used as the
        generator's distribution in L_DC and for ordering generated candidates."""
        return value.mean(1)

    # ---------------------------------------------------------------- Step 3
    def ranker_memory(self, state: State) -> tuple[Tensor, Tensor]:
        """K/V pass-through: the R-Decoder attends to H1 (and the Step-2 outputs), never a
        re-encoded history."""
        if self.cfg.ranker_kv == "step1" or state.tasks is None:
            return state.h1, state.key_pad
        extra = [state.tasks] + ([state.fakes] if state.fakes is not None else [])
        extra = torch.cat(extra, dim=1)
        ones = torch.ones(extra.shape[:2], dtype=torch.bool, device=extra.device)
        return torch.cat([state.h1, extra], dim=1), torch.cat([state.key_pad, ones], dim=1)

    def rank(self, state: State, candidates: Tensor, cache: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """R-Decoder scores [B, C] of candidate ads [B, C] (ids >= 0)."""
        if self.rdecoder is None:
            raise RuntimeError("this model has no ranker (model.use_ranker=False)")
        memory, pad = self.ranker_memory(state)
        cand = self.items(candidates)
        if self.cfg.value_features:
            cand = cand + self.rdecoder.bid_proj(self.items.bid_feature(candidates)[..., None])
        return self.rdecoder(cand, None if cache is not None else memory, pad, cache)

    def refresh_fake_items(self, seed: int) -> None:
        if self.step2 is not None and self.step2.fake is not None:
            self.step2.fake.refresh(self.items(), seed)
