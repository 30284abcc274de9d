"""Networks shared by the agents, and the masked categorical policy.

Illegal actions get the dtype's most negative logit rather than ``-inf``
(:func:`~semcom_jax.env.actions.mask_logits`): their probability is exactly zero after the
softmax, and entropies and KLs stay finite (``0 * finite``).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from semcom_jax.env.actions import ActionLayout, mask_logits
from semcom_jax.env.types import ABSENT, CURRENT, PENDING, SERVED, UNSERVED, Observation


def masked_log_probs(logits, mask):
    return jax.nn.log_softmax(mask_logits(logits, mask), axis=-1)


def entropy(log_probs, mask):
    p = jnp.exp(log_probs)
    return -jnp.sum(jnp.where(mask, p * log_probs, 0.0), axis=-1)


def sample(key, log_probs):
    return jax.random.categorical(key, log_probs, axis=-1).astype(jnp.int32)


def sample_masked(key, logits, mask):
    """An action (...,) int32 of the masked categorical, and its log-probability (...,)."""
    logp_all = masked_log_probs(logits, mask)
    action = sample(key, logp_all)
    return action, jnp.take_along_axis(logp_all, action[..., None], axis=-1)[..., 0]


class MLP(nn.Module):
    hidden: Sequence[int]
    out: int
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.tanh(nn.Dense(h, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(x))
        return nn.Dense(self.out, kernel_init=nn.initializers.orthogonal(self.out_scale))(x)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs on the flat features (``rb_features`` is ignored).

    With ``value_head=False`` only the per-action head exists and the value is ``None``: the
    off-policy agents use it as a policy (SAC's actor) or as per-action Q-values (DQN, SAC's
    critics), so all three algorithms share the same network sizes."""

    num_actions: int
    hidden: Sequence[int] = (64, 64)
    value_head: bool = True

    @nn.compact
    def __call__(self, obs: Observation):
        features = obs.features
        logits = MLP(self.hidden, self.num_actions, out_scale=0.01, name="actor")(features)
        if not self.value_head:
            return logits, None
        value = MLP(self.hidden, 1, out_scale=1.0, name="critic")(features)
        return logits, value[..., 0]


class PerRBActorCritic(nn.Module):
    """Actor-critic whose action head is shared across RBs (permutation-equivariant over RBs).

    A torso embeds the global features into ``g``. Each RB ``q`` gets
    ``h_q = tanh(W_rb x_q + W_g g)`` from its own features ``x_q`` (``rb_features``) and ``g``,
    one more shared layer, and ``K`` logits, one per encoder: action ``k * Q + q``. Splitting the
    first layer into ``W_rb x_q + W_g g`` computes the ``g`` part once per env, not once per RB.
    The "no RB" logit (when ``U > Q``) and the value come from ``g``. The same weights serve any
    number of RBs, so what is learnt about one RB transfers to all.
    """

    actions: ActionLayout  # the action layout the logits follow
    hidden: Sequence[int] = (64, 64)
    rb_hidden: int = 32
    value_head: bool = True  # False: per-action outputs only, value None (see ActorCritic)

    @nn.compact
    def __call__(self, obs: Observation):
        g, rb_features = obs.features, obs.rb_features
        for h in self.hidden:
            g = nn.tanh(nn.Dense(h, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(g))
        value = (nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(g)[..., 0]
                 if self.value_head else None)
        init = nn.initializers.orthogonal(np.sqrt(2))
        h_rb = nn.Dense(self.rb_hidden, kernel_init=init, name="rb_in")(rb_features)
        h_g = nn.Dense(self.rb_hidden, kernel_init=init, use_bias=False, name="g_in")(g)
        h_q = nn.tanh(h_rb + h_g[..., None, :])
        h_q = nn.tanh(nn.Dense(self.rb_hidden, kernel_init=init, name="rb_hidden")(h_q))
        per_rb = nn.Dense(self.actions.num_encoders,
                          kernel_init=nn.initializers.orthogonal(0.01), name="rb_out")(h_q)
        no_rb = (nn.Dense(1, kernel_init=nn.initializers.orthogonal(0.01), name="no_rb")(g)
                 if self.actions.has_no_rb else None)
        return self.actions.flat_logits(per_rb, no_rb), value


def _masked_mean(x, mask):
    """Mean over axis -2 of ``x`` (..., N, d) where ``mask`` (..., N); 0 for an empty set."""
    m = mask[..., None].astype(x.dtype)
    return jnp.sum(x * m, axis=-2) / jnp.maximum(jnp.sum(m, axis=-2), 1.0)


def _masked_max(x, mask):
    """Max over axis -2 where ``mask``; 0 for an empty set."""
    best = jnp.max(jnp.where(mask[..., None], x, -jnp.inf), axis=-2)
    return jnp.where(jnp.any(mask, axis=-1)[..., None], best, 0.0)


CANDIDATE_RULES = ("top", "spread")


def _candidate_rbs(sinr, free, m: int, rule: str = "top"):
    """``m`` free RBs for the SINR feature (..., Q): indices (..., m) and whether each is in view
    (a free RB; a slot with none is marked False). ``"top"``: the ``m`` highest SINRs.
    ``"spread"``: the ``m // 2`` highest, and from each of ``m - m // 2`` equal blocks of RB
    indices its first free RB: RBs are exchangeable (their interference is drawn i.i.d.), so
    these are a sample of the whole population of free RBs, and the policy can leave the best
    ones to later users. Both cost O(Q) per decision (no sort)."""
    q = sinr.shape[-1]
    score = jnp.where(free, sinr, -jnp.inf)
    if rule == "top":
        _, idx = jax.lax.top_k(score, m)
        return idx, jnp.take_along_axis(free, idx, axis=-1)
    top, rest = m // 2, m - m // 2
    _, best = jax.lax.top_k(score, top)
    # Blocks of ceil(Q / rest) indices (the last padded with used slots); a free RB that is
    # already among the best is skipped, so the two halves do not overlap.
    size = -(-q // rest)
    in_top = jnp.any(jnp.arange(q) == best[..., :, None], axis=-2)
    avail = jnp.pad(free & ~in_top, [(0, 0)] * (free.ndim - 1) + [(0, size * rest - q)])
    blocks = avail.reshape(avail.shape[:-1] + (rest, size))
    first = jnp.argmax(blocks, axis=-1).astype(jnp.int32)  # (..., rest): first free in block
    sampled = jnp.minimum(first + size * jnp.arange(rest, dtype=jnp.int32), q - 1)
    ok_sampled = jnp.any(blocks, axis=-1)
    return (jnp.concatenate([best, sampled], axis=-1),
            jnp.concatenate([jnp.take_along_axis(free, best, axis=-1), ok_sampled], axis=-1))


def take_rbs(x, idx):
    """Rows ``idx`` (..., m) of ``x`` (..., Q, width)."""
    return jnp.take_along_axis(x, idx[..., None], axis=-2)


@struct.dataclass
class EpisodeEmbedding:
    """What :class:`SetActorCritic` computes once per episode (nothing in it changes within one).
    Shapes per episode; a batch adds leading axes."""

    users: jnp.ndarray  # (U, width) e_u, from each user's features
    rbs: jnp.ndarray  # (Q, width) e_q, from each RB's interference
    rb_head: jnp.ndarray  # (Q, width) W e_q, the RB's part of its logits' hidden layer


@struct.dataclass
class DecisionView:
    """What one decision of :class:`SetActorCritic` with M RBs in view reads besides the
    episode's tables: the M RBs (chosen from the observation, not by parameters, so a stored
    view re-scores the same actions later) and the few numbers that change per step. Shapes
    per decision; a batch adds leading axes. The episodic rollout stores one per step (O(M)),
    so its update re-scores a decision in O(M x width) without rebuilding the observation."""

    idx: jnp.ndarray  # (M,) int32, the RBs in view
    ok: jnp.ndarray  # (M,) bool, a free RB (a slot without one is out of view)
    sinr: jnp.ndarray  # (M,) float32, the current user's SINR feature on them
    no_rb: jnp.ndarray  # () bool, "no RB" is legal
    context: jnp.ndarray  # (C,) float32, the observation's context
    count: jnp.ndarray  # () float32, users the value stands for (:func:`value_count`)

    # The view's action layout is ActionLayout's (env/actions.py); these read it.
    def mask(self, num_encoders: int) -> jnp.ndarray:
        """(..., M x K + 1): the legal places of the view."""
        return ActionLayout.view_mask(self.ok, self.no_rb, num_encoders)

    def actions(self, layout: ActionLayout) -> jnp.ndarray:
        """(..., M x K + 1) int32: the env's action for each place of the view."""
        return layout.view_actions(self.idx)

    def full_logits(self, logits, layout: ActionLayout) -> jnp.ndarray:
        """(..., A) from logits over the view (..., M x K + 1)."""
        return layout.view_to_actions(logits, self.idx, self.ok)


def decision_view(sinr, action_mask, context, count, m: int, rule: str,
                  num_encoders: int) -> DecisionView:
    """The :class:`DecisionView` of an observation's parts: ``sinr`` (..., Q) its SINR feature
    (``Observation.rb_sinr``), its ``action_mask`` (..., A) and ``context``, and ``count``."""
    layout = ActionLayout(num_encoders, sinr.shape[-1], has_no_rb=True)
    idx, ok = _candidate_rbs(sinr, layout.free_rbs(action_mask), m, rule)
    return DecisionView(idx=idx.astype(jnp.int32), ok=ok,
                        sinr=jnp.take_along_axis(sinr, idx, axis=-1),
                        no_rb=layout.no_rb_legal(action_mask), context=context,
                        count=jnp.asarray(count, jnp.float32))


def value_count(status, value_scale: str):
    """(...,) users a size-free value stands for, from the statuses (..., U): those still to
    decide (``"remaining"``, a reward paid user by user) or all of them (``"total"``)."""
    if value_scale == "total":
        return jnp.sum(status != ABSENT, axis=-1)
    return jnp.sum((status == PENDING) | (status == CURRENT), axis=-1)


class SetActorCritic(nn.Module):
    """Actor-critic whose parameters do not depend on U or Q (size-free), split into what is
    fixed for an episode and what changes per decision, so a decision costs O(Q x width).

    Per episode (:meth:`embed_episode`): each user is embedded by a shared layer from its
    features, ``e_u``; each RB from its interference (column 0 of ``rb_features``), ``e_q``, and
    pre-projected for the head, ``W e_q``. Per decision (:meth:`decide`): a summary ``s``
    concatenates the user summary (:meth:`user_summary`: the current user's ``e_u``, the mean and
    max of ``e_u`` over pending users, the mean over served users and the mean over unserved
    ones), the mean and max of ``e_q`` over free RBs, and ``context``; a torso maps it to ``g``.
    Each RB gets ``K`` logits from ``tanh(W e_q + c * sinr_q + V g)`` (action ``k * Q + q``),
    where ``sinr_q`` is the current user's SINR on it (column 2), the only per-(user, RB) input;
    the "no RB" logit comes from ``g``. The value comes from its own torso on ``s``, times the
    number of users it stands for (``value_scale``: users still to decide, for a reward paid user
    by user; all users, for the terminal reward), so a per-user value learnt at one size holds
    at another. Equivariant to permutations of the users and of the RBs.

    ``__call__(obs)`` composes the three from an observation (O((U + Q) x width) per call);
    :mod:`semcom_jax.agents.episodic` calls them apart, the embedding once per episode and the
    user summary from running sums, which is what makes training at U = 1000 affordable.
    """

    num_encoders: int
    hidden: Sequence[int] = (64, 64)  # summary torso (actor and critic each)
    width: int = 32  # user/RB embeddings and the per-RB head
    value_head: bool = True
    value_scale: str = "remaining"  # "remaining" (dense reward) or "total" (terminal reward)
    # 0: every RB is scored at every decision, O(Q x width). M > 0: only M free RBs are (the RB
    # summary, the head and the logits), chosen by ``candidate_rule`` (see ``_candidate_rbs``);
    # the other RBs' actions get the most negative logit. A decision then costs O(Q) to select
    # and O(M x width) to score; with Q <= M nothing changes. The policy then lives on the
    # view's M x K + 1 actions (:class:`DecisionView`): PPO samples, stores and re-scores
    # decisions there, never over all A actions.
    candidates: int = 0
    candidate_rule: str = "top"  # one of CANDIDATE_RULES

    def setup(self):
        init = nn.initializers.orthogonal(np.sqrt(2))
        self.user_in = nn.Dense(self.width, kernel_init=init)
        self.rb_in = nn.Dense(self.width, kernel_init=init)
        self.torso = [nn.Dense(h, kernel_init=init) for h in self.hidden]
        self.head_rb = nn.Dense(self.width, kernel_init=init, use_bias=False)
        # A (Q, 1) x (1, width) product as a broadcast: XLA's CPU dot with an inner size of
        # one, fused into the tanh, is several times slower than the elementwise form.
        self.head_sinr = self.param("head_sinr", nn.initializers.normal(1.0), (self.width,))
        self.head_g = nn.Dense(self.width, kernel_init=init)
        self.head_out = nn.Dense(self.num_encoders, kernel_init=nn.initializers.orthogonal(0.01))
        self.no_rb = nn.Dense(1, kernel_init=nn.initializers.orthogonal(0.01))
        if self.value_head:
            self.critic = [nn.Dense(h, kernel_init=init) for h in self.hidden]
            self.critic_out = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))

    def embed_episode(self, user_features, rb_interference) -> EpisodeEmbedding:
        """``user_features`` (..., U, F), ``rb_interference`` (..., Q, 1): the episode's fixed
        embeddings."""
        e_q = nn.tanh(self.rb_in(rb_interference))
        return EpisodeEmbedding(users=nn.tanh(self.user_in(user_features)), rbs=e_q,
                                rb_head=self.head_rb(e_q))

    @staticmethod
    def user_summary(e_u, status):
        """(..., 5 width) from the user embeddings (..., U, width) and statuses (..., U)."""
        pending = status == PENDING
        return jnp.concatenate([
            _masked_mean(e_u, status == CURRENT),  # the current user's own embedding
            _masked_mean(e_u, pending), _masked_max(e_u, pending),
            _masked_mean(e_u, status == SERVED), _masked_mean(e_u, status == UNSERVED)], axis=-1)

    def value_count(self, status):
        """(...,) the number of users the value stands for (see ``value_scale``)."""
        return value_count(status, self.value_scale)

    def _score(self, users, count, rbs, rb_head, sinr, in_view, context):
        """Per-RB logits (..., R, K), "no RB" logit (..., 1) and value (...,) of one decision
        from the R RBs it scores: their embeddings ``rbs`` and head parts ``rb_head``
        (..., R, width), the current user's SINR feature on them (..., R) and which are in
        view (..., R): free RBs (the summary's mean and max run over these only)."""
        summary = jnp.concatenate([users, _masked_mean(rbs, in_view),
                                   _masked_max(rbs, in_view), context], axis=-1)
        g = summary
        for layer in self.torso:
            g = nn.tanh(layer(g))
        h = nn.tanh(rb_head + sinr[..., None] * self.head_sinr + self.head_g(g)[..., None, :])
        per_rb, no_rb = self.head_out(h), self.no_rb(g)
        if not self.value_head:
            return per_rb, no_rb, None
        c = summary
        for layer in self.critic:
            c = nn.tanh(layer(c))
        return per_rb, no_rb, self.critic_out(c)[..., 0] * jnp.asarray(count, jnp.float32)

    def decide(self, users, count, emb: EpisodeEmbedding, sinr, action_mask, context):
        """Logits (..., A) and value (...,) of one decision: ``users`` (..., 5 width) from
        :meth:`user_summary`, ``count`` (...,) from :meth:`value_count`, ``emb`` without its
        ``users``, ``sinr`` (..., Q) the current user's SINR feature per RB, the mask and the
        context of the observation. With M RBs in view, the view's logits
        (:meth:`decide_view`) laid out over all A actions."""
        layout = ActionLayout(self.num_encoders, sinr.shape[-1], has_no_rb=True)
        if not self.has_view(sinr.shape[-1]):
            per_rb, no_rb, value = self._score(users, count, emb.rbs, emb.rb_head, sinr,
                                               layout.free_rbs(action_mask), context)
            return layout.flat_logits(per_rb, no_rb), value
        view = decision_view(sinr, action_mask, context, count, self.candidates,
                             self.candidate_rule, self.num_encoders)
        logits, value = self.decide_view(users, view, take_rbs(emb.rbs, view.idx),
                                         take_rbs(emb.rb_head, view.idx))
        return view.full_logits(logits, layout), value

    def has_view(self, num_rbs: int) -> bool:
        """Whether a decision scores fewer RBs than there are (``candidates``), so that its
        policy lives on the M x K + 1 actions of a :class:`DecisionView`."""
        return 0 < self.candidates < num_rbs

    def decide_view(self, users, view: DecisionView, rbs, rb_head):
        """Logits (..., M x K + 1) over the actions of ``view`` (:meth:`DecisionView.actions`,
        :meth:`DecisionView.mask`) and value (...,): the same numbers :meth:`decide` gives
        those actions (every other action has probability zero there), in O(M x width).
        ``rbs``, ``rb_head`` (..., M, width): the episode's RB embeddings at ``view.idx``."""
        per_rb, no_rb, value = self._score(users, view.count, rbs, rb_head, view.sinr, view.ok,
                                           view.context)
        return ActionLayout.view_flat(per_rb, no_rb), value

    def __call__(self, obs: Observation, embedding: EpisodeEmbedding | None = None):
        """From an observation; ``embedding`` (this episode's :meth:`embed_episode`) skips the
        per-episode part."""
        emb = (self.embed_episode(obs.user_features, obs.rb_interference)
               if embedding is None else embedding)
        return self.decide(self.user_summary(emb.users, obs.user_status),
                           self.value_count(obs.user_status), emb, obs.rb_sinr,
                           obs.action_mask, obs.context)


NETWORKS = ("set", "per_rb", "mlp")


def make_network(config, env, value_head: bool = True):
    """The network of a :class:`~semcom_jax.agents.config.NetworkConfig` for ``env``: ``kind``
    "set" (size-free), "per_rb" (per-RB head on the flat features) or "mlp";
    ``rb_candidates``: the set network's RBs in view per decision (0: all)."""
    kind, hidden, rb_hidden = config.kind, config.hidden, config.rb_hidden
    rb_candidates, candidate_rule = config.rb_candidates, config.rb_candidate_rule
    if rb_candidates and kind != "set":
        raise ValueError(f"rb_candidates is an option of the 'set' network, not of {kind!r}")
    if kind in ("mlp", "per_rb") and not env.flat_features:
        raise ValueError(f"network {kind!r} reads the flat features, but this env was built "
                         "with flat_features=False")
    if kind == "mlp":
        return ActorCritic(env.num_actions, tuple(hidden), value_head)
    if kind == "per_rb":
        return PerRBActorCritic(env.actions, tuple(hidden), rb_hidden, value_head)
    if kind == "set":
        scale = "remaining" if env.reward_name == "dense" else "total"
        if candidate_rule not in CANDIDATE_RULES:
            raise ValueError(f"candidate_rule must be one of {CANDIDATE_RULES}, got "
                             f"{candidate_rule!r}")
        return SetActorCritic(env.num_encoders, tuple(hidden), rb_hidden, value_head, scale,
                              rb_candidates, candidate_rule)
    raise ValueError(f"network must be one of {NETWORKS}, got {kind!r}")
