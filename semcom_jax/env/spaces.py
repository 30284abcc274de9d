"""The env's spaces are gymnax's own (``Discrete``, ``Box``, ``Dict``), so agents that check
``isinstance(space, gymnax.environments.spaces.Discrete)`` accept them.

``SemComEnv.observation_space(params)`` describes the :class:`Observation` pytree field by field
(or one ``Box`` for ``obs_format="flat"``); ``action_space(params)`` is ``Discrete(A)``.
:func:`flatten_observation` turns an observation into one float vector plus the mask.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from gymnax.environments.spaces import Box, Dict, Discrete

__all__ = ["Box", "Dict", "Discrete", "FEATURE_BOUND", "NUM_STATUS", "flatten_observation"]


# Every observation column is a ratio in [-1, 1], a one-hot, a log10 of a float32 quantity or a
# dB value / 30 of a float32 SINR (|SINR dB| < 390): |x| < 100 holds for any accepted parameters.
FEATURE_BOUND = 100.0
NUM_STATUS = 5  # PENDING, CURRENT, SERVED, UNSERVED, ABSENT


def flatten_observation(obs) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(x, action_mask)``: one float32 vector holding the whole observation, for an MLP or a
    library that wants a flat ``Box``. With flat features (the default env), ``x`` is
    ``obs.features``, which already holds the paper's whole state; an env built with
    ``flat_features=False`` gets the set fields concatenated instead (RB features, user features,
    one-hot user status, context). Works on one observation or a batch (leading axes)."""
    if obs.features.shape[-1] > 0:
        return obs.features, obs.action_mask
    lead = obs.rb_features.shape[:-2]
    parts = [obs.rb_features.reshape(lead + (-1,)), obs.user_features.reshape(lead + (-1,)),
             jax.nn.one_hot(obs.user_status, NUM_STATUS, dtype=jnp.float32).reshape(lead + (-1,)),
             obs.context]
    return jnp.concatenate(parts, axis=-1), obs.action_mask
