"""One episode's physical draw: positions, fading, interference, compute and image sizes."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Instance:
    """One episode's randomness, drawn at reset and fixed for the episode (block fading).
    Shapes use U users and Q RBs."""

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
