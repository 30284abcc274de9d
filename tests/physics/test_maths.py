"""Eqs. (2)-(9) and (11) against plain-Python values computed here, and their limits."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.physics import channel, costs, link
from semcom_jax.physics.params import EnvParams
from semcom_jax.env.reward import unserved_term, user_term
from semcom_jax.physics.instance import Instance

P = EnvParams()


def test_rate_matches_hand_value():
    # user at 100 m, fading 0.5, RB interference 1e-6 W
    g = 0.5 * 100.0 ** -2
    s = 0.2 * g / (1e-6 + 20e6 * 4e-21)
    c = 20e6 * math.log2(1 + s)
    sj = channel.sinr(P.tx_power_w, channel.path_gain(0.5, 100.0, 2.0), 1e-6, P.rb_bandwidth_hz,
                      P.noise_psd_w_per_hz)
    assert math.isclose(float(sj), s, rel_tol=1e-5)
    assert math.isclose(float(channel.rate_bps(P.rb_bandwidth_hz, sj)), c, rel_tol=1e-5)


def test_delay_and_energy_match_hand_values():
    rate, dx, fb, wb, fu, wu = 5e6, 50000.0, 3e9, 800.0, 1.5e9, 700.0
    dm, do = 3.96, 16384.0
    lb = wb * dx * dm / fb
    lt = do / rate
    ll = wu * do * 1.0 / fu
    eb = 1e-24 * fb**2 * dx * dm + 0.2 * lt
    el = 1e-28 * fu**2 * do * 1.0
    d, e = costs.delay_and_energy(P, rate, dx, fb, wb, fu, wu, dm, do)
    assert math.isclose(float(d), lb + lt + ll, rel_tol=1e-5)
    assert math.isclose(float(e), eb + el, rel_tol=1e-5)


def test_link_evaluate_matches_hand_values_on_an_instance():
    inst = Instance(
        user_xy_m=jnp.array([[30.0, 40.0]]), distance_m=jnp.array([50.0]), fading=jnp.array([2.0]),
        interference_w=jnp.array([1e-3, 1e-8]), bs_freq_hz=jnp.float32(2.5e9),
        bs_cycles_per_bit=jnp.float32(600.0), image_bits=jnp.array([60000.0]),
        user_freq_hz=jnp.array([1.2e9]), user_cycles_per_bit=jnp.array([900.0]),
        image_index=jnp.array([0]))
    lk = link.evaluate(inst, P, 0, 2, 1)
    s = 0.2 * 2.0 * 50.0**-2 / (1e-8 + 8e-14)
    rate = 20e6 * math.log2(1 + s)
    delay = 600 * 60000 * 18.4 / 2.5e9 + 24576 / rate + 900 * 24576 / 1.2e9
    energy = 1e-24 * 2.5e9**2 * 60000 * 18.4 + 0.2 * 24576 / rate + 1e-28 * 1.2e9**2 * 24576
    assert math.isclose(float(lk.sinr_db), 10 * math.log10(s), rel_tol=1e-5)
    assert math.isclose(float(lk.delay_s), delay, rel_tol=1e-5)
    assert math.isclose(float(lk.energy_j), energy, rel_tol=1e-5)
    # ViT-L/14 on a 60 kbit image at 2.5 GHz breaks the 200 ms budget by itself.
    assert delay > P.delay_budget_s


def test_reward_term_hand_values():
    assert math.isclose(float(user_term(-0.3, 0.1, 5.0, P)), -0.3)
    assert math.isclose(float(user_term(-0.3, 0.3, 5.0, P)), -1.3)
    assert math.isclose(float(user_term(-0.3, 0.3, 25.0, P)), -2.3)
    assert math.isclose(float(unserved_term(math.log(0.1), P)), math.log(0.1) - 1.0, rel_tol=1e-6)


def test_limits_rate_grows_delay_falls_and_all_finite():
    interf = jnp.logspace(-12, 1, 200)  # 1e-12 .. 10 W
    s = channel.sinr(P.tx_power_w, channel.path_gain(1.0, 250.0, 2.0), interf, P.rb_bandwidth_hz,
                     P.noise_psd_w_per_hz)
    rate = channel.rate_bps(P.rb_bandwidth_hz, s)
    d, e = costs.delay_and_energy(P, rate, 50000.0, 3e9, 750.0, 1.5e9, 750.0, 1.0, 16384.0)
    for x in (s, rate, d, e, channel.to_db(s)):
        assert bool(jnp.all(jnp.isfinite(x)))
    # interference ascending -> SINR and rate descending, delay and energy ascending
    assert bool(jnp.all(jnp.diff(s) < 0)) and bool(jnp.all(jnp.diff(rate) < 0))
    assert bool(jnp.all(jnp.diff(d) > 0)) and bool(jnp.all(jnp.diff(e) >= 0))
    # rate grows with SINR, over a grid of SINRs
    sinrs = jnp.logspace(-8, 8, 100)
    assert bool(jnp.all(jnp.diff(channel.rate_bps(20e6, sinrs)) > 0))


def test_maths_is_jittable_and_vmappable():
    f = jax.jit(jax.vmap(lambda i: channel.rate_bps(20e6, channel.sinr(0.2, 1e-5, i, 20e6, 4e-21))))
    out = f(jnp.array([1e-9, 1e-3, 1.0]))
    expected = [20e6 * math.log2(1 + 0.2e-5 / (i + 8e-14)) for i in (1e-9, 1e-3, 1.0)]
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4)
