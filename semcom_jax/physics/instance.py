"""One episode's physical draw (positions, fading, interference, compute and image sizes), and
the map from uniform numbers to it that every generator and the float32 range check share."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

# The open unit interval the generators draw from, at their two resolutions (uniforms with 23 and
# 16 random bits, offset by half a step): the most extreme values a draw can take. The range
# check (``physics.bounds``) evaluates the physics at these corners.
FINE_EXTREMES = (0.5 / 2**23, 1.0 - 0.5 / 2**23)
COARSE_EXTREMES = (0.5 / 2**16, 1.0 - 0.5 / 2**16)


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


def _scale(v, lo, hi):
    return lo + v * (hi - lo)


def instance_from_uniforms(params, x_r2, x_theta, x_fade, x_int, x_img, x_fu, x_wu, x_fb, x_wb,
                           image_index) -> Instance:
    """The model's distributions (docs/model.md) from uniforms in (0, 1): users area-uniform in the annulus
    ``d_min <= d <= R``, Rayleigh fading, log-uniform interference, uniform compute and image
    sizes. Per-user arrays (U,): ``x_r2, x_theta, x_fade, x_img, x_fu, x_wu``; per-RB (Q,):
    ``x_int``; scalars: ``x_fb, x_wb``."""
    # Area-uniform radius: r^2 uniform between d_min^2 and R^2.
    r = jnp.sqrt(_scale(x_r2, params.min_distance_m**2, params.cell_radius_m**2))
    theta = 2.0 * jnp.pi * x_theta
    xy = jnp.stack([r * jnp.cos(theta), r * jnp.sin(theta)], axis=-1)
    log_i = _scale(x_int, jnp.log10(params.interference_lo_w), jnp.log10(params.interference_hi_w))
    return Instance(
        user_xy_m=xy,
        distance_m=r,
        # Exp(1) as -log(v), v in (0, 1): strictly positive, so SINR and delays stay finite.
        fading=-jnp.log(x_fade),
        interference_w=10.0**log_i,
        bs_freq_hz=_scale(x_fb, params.bs_freq_lo_hz, params.bs_freq_hi_hz),
        bs_cycles_per_bit=_scale(x_wb, params.bs_cycles_lo_per_bit, params.bs_cycles_hi_per_bit),
        image_bits=_scale(x_img, params.image_bits_lo, params.image_bits_hi),
        user_freq_hz=_scale(x_fu, params.user_freq_lo_hz, params.user_freq_hi_hz),
        user_cycles_per_bit=_scale(x_wu, params.user_cycles_lo_per_bit,
                                   params.user_cycles_hi_per_bit),
        image_index=image_index,
    )
