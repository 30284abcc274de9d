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
    """Separate actor and critic MLPs on the observation features; logits over all A actions."""

    num_actions: int
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, features):
        logits = MLP(self.hidden, self.num_actions, out_scale=0.01, name="actor")(features)
        value = MLP(self.hidden, 1, out_scale=1.0, name="critic")(features)
        return logits, value[..., 0]
