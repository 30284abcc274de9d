"""Networks shared by the agents, and the masked categorical policy.

Illegal actions get the dtype's most negative logit rather than ``-inf``: their probability is
exactly zero after the softmax, and entropies and KLs stay finite (``0 * finite``).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.env.actions import ActionCodec


def mask_logits(logits: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    return jnp.where(mask, logits, jnp.finfo(logits.dtype).min)


def masked_log_probs(logits, mask):
    return jax.nn.log_softmax(mask_logits(logits, mask), axis=-1)


def entropy(log_probs, mask):
    p = jnp.exp(log_probs)
    return -jnp.sum(jnp.where(mask, p * log_probs, 0.0), axis=-1)


def kl_divergence(log_p, log_q, mask):
    """KL(p || q) of two masked categoricals over the same legal set."""
    return jnp.sum(jnp.where(mask, jnp.exp(log_p) * (log_p - log_q), 0.0), axis=-1)


def sample(key, log_probs):
    return jax.random.categorical(key, log_probs, axis=-1).astype(jnp.int32)


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
    def __call__(self, features, rb_features=None):
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

    actions: ActionCodec  # the action layout the logits follow
    hidden: Sequence[int] = (64, 64)
    rb_hidden: int = 32
    value_head: bool = True  # False: per-action outputs only, value None (see ActorCritic)

    @nn.compact
    def __call__(self, features, rb_features):
        g = features
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


def make_network(kind: str, env, hidden, rb_hidden: int, value_head: bool = True):
    if kind == "mlp":
        return ActorCritic(env.num_actions, tuple(hidden), value_head)
    if kind == "per_rb":
        return PerRBActorCritic(env.actions, tuple(hidden), rb_hidden, value_head)
    raise ValueError(f"network must be 'mlp' or 'per_rb', got {kind!r}")
