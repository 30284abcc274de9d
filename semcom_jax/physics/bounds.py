"""Float32 range check: do parameters keep every simulated quantity finite?

The simulator computes in float32 (largest value 3.4e38; XLA on the CPU flushes values below the
smallest normal, 1.2e-38, to zero). A parameter set that passes the interval checks of
``validate_params`` can still overflow or underflow there (``tx_power_w=1e39`` is inf in float32;
``zeta_bs * f_B**2`` overflows for f_B above ~1e19 Hz; an SINR below 1e-38 becomes 0 and its dB
value -inf). Every quantity of eqs. (2)-(9) and every observation column is monotone in each
sampled variable, so its extremes over all episodes are reached at the corners of the sampling
box: this module evaluates the simulator's own functions, compiled as the simulator compiles them,
at every corner (the most extreme uniforms a generator can draw, ``FINE_EXTREMES`` /
``COARSE_EXTREMES``), and names the first quantity that is not finite and positive.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.physics import channel, link
from semcom_jax.physics.instance import COARSE_EXTREMES, FINE_EXTREMES, instance_from_uniforms

# What each checked quantity depends on, for the error message.
_DEPENDS = {
    "distance": "min_distance_m, cell_radius_m",
    "fading-free path gain": "pathloss_exp, min_distance_m, cell_radius_m",
    "interference": "interference_lo_w, interference_hi_w",
    "SINR": "tx_power_w, pathloss_exp, min_distance_m, cell_radius_m, interference_lo_w, "
            "interference_hi_w, rb_bandwidth_hz, noise_psd_w_per_hz",
    "fading-free SINR": "tx_power_w, pathloss_exp, min_distance_m, cell_radius_m, "
                        "interference_lo_w, interference_hi_w, rb_bandwidth_hz, noise_psd_w_per_hz",
    "rate": "rb_bandwidth_hz and the SINR's parameters",
    "delay": "image_bits_*, bs_cycles_*, bs_freq_*, user_cycles_*, user_freq_*, decoder_size, "
             "encoder_compute, encoder_feature_bits and the rate's parameters",
    "energy": "zeta_bs, zeta_user, bs_freq_*, user_freq_*, image_bits_*, decoder_size, "
              "encoder_compute, encoder_feature_bits, tx_power_w and the rate's parameters",
}


def _corner_uniforms():
    """Per-user corners (U = 32: distance, fading, image size, user clock and cycles), per-RB
    corners (Q = 2: interference), BS corners (4: clock and cycles)."""
    users = np.array(list(itertools.product(COARSE_EXTREMES, FINE_EXTREMES, COARSE_EXTREMES,
                                            COARSE_EXTREMES, COARSE_EXTREMES)), np.float32)
    bs = np.array(list(itertools.product(COARSE_EXTREMES, COARSE_EXTREMES)), np.float32)
    return jnp.asarray(users), jnp.asarray(FINE_EXTREMES, jnp.float32), jnp.asarray(bs)


@jax.jit
def _extremes(params):
    """(name -> (min, max)) of every checked quantity over all corners; positive quantities
    should have a finite, > 0 minimum and a finite maximum."""
    users, x_int, bs = _corner_uniforms()
    out = {}

    def put(name, x):
        lo, hi = jnp.min(x), jnp.max(x)
        if name in out:
            lo, hi = jnp.minimum(lo, out[name][0]), jnp.maximum(hi, out[name][1])
        out[name] = (lo, hi)

    k = len(params.encoder_compute)
    for b in range(bs.shape[0]):
        inst = instance_from_uniforms(
            params, users[:, 0], jnp.zeros_like(users[:, 0]), users[:, 1], x_int, users[:, 2],
            users[:, 3], users[:, 4], bs[b, 0], bs[b, 1], jnp.zeros(users.shape[0], jnp.int32))
        put("distance", inst.distance_m)
        put("interference", inst.interference_w)
        put("fading-free path gain", channel.path_gain(1.0, inst.distance_m, params.pathloss_exp))
        u = jnp.arange(users.shape[0])[:, None, None]
        enc = jnp.arange(k)[None, :, None]
        q = jnp.arange(2)[None, None, :]
        lk = link.evaluate(inst, params, u, enc, q)
        put("SINR", lk.sinr_linear)
        flat = link.user_sinr(inst.replace(fading=jnp.ones_like(inst.fading)), params,
                              u[..., 0], q[..., 0])
        put("fading-free SINR", flat)
        put("rate", lk.rate_bps)
        put("delay", lk.delay_s)
        put("energy", lk.energy_j)
    return out


def check_float32_range(params) -> None:
    """Raises ``ValueError`` naming the first quantity that some episode drawn with ``params``
    would make non-finite (or zero where it must be positive) in float32."""
    extremes = _extremes(params)
    for name in _DEPENDS:  # in the order of the computation, so the first cause is named
        lo, hi = (float(x) for x in extremes[name])
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0.0:
            bad = hi if not np.isfinite(hi) else lo
            raise ValueError(
                f"parameters out of the simulator's float32 range: the {name} reaches {bad:.3g} "
                f"in some episodes (range over the most extreme draws: [{lo:.3g}, {hi:.3g}]; it "
                f"must be finite and > 0, float32 holds 1.2e-38..3.4e38); "
                f"it depends on {_DEPENDS[name]}")
