"""Named containers of the environment. Shapes use U users, Q RBs, K encoders, A actions."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from semcom_jax.physics.instance import Instance

# Per-RB observation columns: interference feature, RB in use, SINR of the current user (dB/30).
RB_FEATURES = 3

__all__ = ["EnvState", "Instance", "Observation", "RB_FEATURES"]


@struct.dataclass
class EnvState:
    """Immutable env state; every step returns a new one."""

    instance: Instance
    step: jnp.ndarray  # () int32, index of the user being decided, 0..U
    rb_used: jnp.ndarray  # (Q,) bool, nu_q: RB already allocated
    encoder: jnp.ndarray  # (U,) int32, chosen encoder, -1 while undecided or unserved
    rb: jnp.ndarray  # (U,) int32, chosen RB, -1 while undecided or unserved
    user_reward: jnp.ndarray  # (U,) float32, each decided user's term of eq. (11)


@struct.dataclass
class Observation:
    """What the agent sees. ``action_mask`` is True for legal actions."""

    features: jnp.ndarray  # (F,) float32, normalised state features (see the env docstring)
    rb_features: jnp.ndarray  # (Q, RB_FEATURES) float32: interference, in use, SINR of this user
    action_mask: jnp.ndarray  # (A,) bool
