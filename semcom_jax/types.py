"""Named containers of the environment. Shapes use U users, Q RBs, K encoders, A actions."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Instance:
    """One episode's randomness, drawn at reset and fixed for the episode (block fading)."""

    user_xy_m: jnp.ndarray  # (U, 2) float32, user positions relative to the BS
    distance_m: jnp.ndarray  # (U,) float32, |user_xy_m|, in [d_min, R]
    fading: jnp.ndarray  # (U,) float32, gamma_i ~ Exp(1)
    interference_w: jnp.ndarray  # (Q,) float32, I_q
    bs_freq_hz: jnp.ndarray  # () float32, f^B
    bs_cycles_per_bit: jnp.ndarray  # () float32, omega^B
    image_bits: jnp.ndarray  # (U,) float32, D^X_i
    user_freq_hz: jnp.ndarray  # (U,) float32, f^U_i
    user_cycles_per_bit: jnp.ndarray  # (U,) float32, omega^U_i
    image_index: jnp.ndarray  # (U,) int32, image each user receives (``features`` score mode)


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

    features: jnp.ndarray  # (F,) float32, normalised state features (see env docstring)
    rb_features: jnp.ndarray  # (Q, 3) float32, per RB: interference, in use, SINR of this user
    action_mask: jnp.ndarray  # (A,) bool
