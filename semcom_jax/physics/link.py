"""Composes eqs. (2)-(9) for a choice (user, encoder, RB) of one episode instance.

Indices broadcast: scalars for one step of the env, or ``u[:, None, None]``, ``k[None, :, None]``,
``q[None, None, :]`` for the full (U, K, Q) table the solvers need. ``params`` is an
:class:`~semcom_jax.physics.params.EnvParams` (read by field, not imported: the parameter
validation runs these equations, so this module sits below ``params``).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from semcom_jax.physics import channel, costs
from semcom_jax.physics.instance import Instance


@struct.dataclass
class Link:
    sinr_linear: jnp.ndarray
    sinr_db: jnp.ndarray
    rate_bps: jnp.ndarray
    delay_s: jnp.ndarray
    energy_j: jnp.ndarray


def user_sinr(instance: Instance, params, user, rb) -> jnp.ndarray:
    gain = channel.path_gain(instance.fading[user], instance.distance_m[user], params.pathloss_exp)
    return channel.sinr(params.tx_power_w, gain, instance.interference_w[rb],
                        params.rb_bandwidth_hz, params.noise_psd_w_per_hz)


def evaluate(instance: Instance, params, user, encoder, rb) -> Link:
    s = user_sinr(instance, params, user, rb)
    rate = channel.rate_bps(params.rb_bandwidth_hz, s)
    compute = jnp.asarray(params.encoder_compute, jnp.float32)[encoder]
    bits = jnp.asarray(params.encoder_feature_bits, jnp.float32)[encoder]
    delay, energy = costs.delay_and_energy(
        params, rate, instance.image_bits[user], instance.bs_freq_hz, instance.bs_cycles_per_bit,
        instance.user_freq_hz[user], instance.user_cycles_per_bit[user], compute, bits)
    return Link(sinr_linear=s, sinr_db=channel.to_db(s), rate_bps=rate, delay_s=delay,
                energy_j=energy)
