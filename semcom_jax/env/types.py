"""Named containers of the environment. Shapes use U users, Q RBs, K encoders, A actions."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from semcom_jax.physics.instance import Instance

# Per-RB observation columns (``Observation.rb_features``): interference feature, RB in use,
# SINR of the current user (dB / 30).
RB_INTERFERENCE, RB_IN_USE, RB_SINR = 0, 1, 2
RB_FEATURES = 3
# Per-user observation columns, fixed for the episode: x/R, y/R, d/R (every mode, the first
# USER_POSITION columns); ``full`` adds log10 fading, image size, CPU frequency and cycles per
# bit (ranges mapped to [-1, 1]), the columns from USER_HIDDEN on.
USER_POSITION = USER_HIDDEN = 3
USER_FEATURES = {"paper": 3, "full": 7}
# Size-free summary: fraction of users decided, log((users left + 1) / (free RBs + 1)), fraction
# of RBs free; ``full`` adds f^B and w^B (ranges mapped to [-1, 1]).
CONTEXT_FEATURES = {"paper": 3, "full": 5}

# ``Observation.user_status`` codes.
PENDING, CURRENT, SERVED, UNSERVED, ABSENT = 0, 1, 2, 3, 4

__all__ = ["ABSENT", "CONTEXT_FEATURES", "CURRENT", "EnvState", "Instance", "Observation",
           "PENDING", "RB_FEATURES", "RB_INTERFERENCE", "RB_IN_USE", "RB_SINR", "SERVED",
           "UNSERVED", "USER_FEATURES", "USER_HIDDEN", "USER_POSITION"]


@struct.dataclass
class EnvState:
    """Immutable env state; every step returns a new one."""

    instance: Instance
    step: jnp.ndarray  # () int32, index of the user being decided, 0..U
    rb_used: jnp.ndarray  # (Q,) bool, nu_q: RB already allocated
    encoder: jnp.ndarray  # (U,) int32, chosen encoder, -1 while undecided or unserved
    rb: jnp.ndarray  # (U,) int32, chosen RB, -1 while undecided or unserved
    user_reward: jnp.ndarray  # (U,) float32, each decided user's term of eq. (11)

    @property
    def time(self) -> jnp.ndarray:
        """gymnax's step counter: the steps taken in this episode (= ``step``)."""
        return self.step


@struct.dataclass
class Observation:
    """What the agent sees. ``action_mask`` is True for legal actions.

    ``features`` is the flat vector of the paper's state (its width depends on U and Q; width 0
    when the env is built with ``flat_features=False``). The other fields hold the same
    information as sets, for networks whose parameters do not depend on U or Q."""

    features: jnp.ndarray  # (F,) float32, normalised state features (see the env docstring)
    rb_features: jnp.ndarray  # (Q, RB_FEATURES) float32: interference, in use, SINR of this user
    action_mask: jnp.ndarray  # (A,) bool
    user_features: jnp.ndarray  # (U, USER_FEATURES[mode]) float32, fixed for the episode
    user_status: jnp.ndarray  # (U,) int32: PENDING, CURRENT, SERVED, UNSERVED or ABSENT (padding)
    context: jnp.ndarray  # (CONTEXT_FEATURES[mode],) float32, size-free summary

    @property
    def rb_interference(self) -> jnp.ndarray:
        """(..., Q, 1) the interference column of ``rb_features``."""
        return self.rb_features[..., RB_INTERFERENCE:RB_INTERFERENCE + 1]

    @property
    def rb_sinr(self) -> jnp.ndarray:
        """(..., Q) the current user's SINR column of ``rb_features``."""
        return self.rb_features[..., RB_SINR]
