"""Downlink channel, paper eq. (2). Pure functions of arrays; broadcasting is the caller's choice.

All powers are linear watts, bandwidths hertz, distances metres, rates bit/s.
"""

from __future__ import annotations

import jax.numpy as jnp

_LN2 = 0.6931471805599453


def path_gain(fading: jnp.ndarray, distance_m: jnp.ndarray, pathloss_exp) -> jnp.ndarray:
    """phi_i = gamma_i * d_i^(-alpha)  (dimensionless)."""
    return fading * distance_m ** (-pathloss_exp)


def sinr(tx_power_w, gain, interference_w, bandwidth_hz, noise_psd_w_per_hz) -> jnp.ndarray:
    """SINR = P phi / (I_q + W N0)  (linear, dimensionless)."""
    return tx_power_w * gain / (interference_w + bandwidth_hz * noise_psd_w_per_hz)


def rate_bps(bandwidth_hz, sinr_linear) -> jnp.ndarray:
    """c = W log2(1 + SINR). ``log1p`` keeps the rate exact for the tiny SINRs of jammed RBs."""
    return bandwidth_hz * jnp.log1p(sinr_linear) / _LN2


def to_db(x) -> jnp.ndarray:
    return 10.0 * jnp.log10(x)
