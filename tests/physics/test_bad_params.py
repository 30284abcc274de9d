"""Bad physical parameters are refused naming the culprit; every accepted parameter set gives
finite observations and rewards in float32."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.env.environment import SemComEnv
from semcom_jax.physics.params import EnvParams


# ----------------------------------------------------------------------------- parameters

BAD_PARAMS = [
    ({"tx_power": 1.0}, "tx_power"),  # unknown key
    ({"tx_power_w": "0.2"}, "tx_power_w"),
    ({"tx_power_w": True}, "tx_power_w"),
    ({"tx_power_w": None}, "tx_power_w"),
    ({"tx_power_w": [0.2]}, "tx_power_w"),
    ({"tx_power_w": 10**400}, "tx_power_w"),
    ({"tx_power_w": float("nan")}, "tx_power_w"),
    ({"tx_power_w": float("inf")}, "tx_power_w"),
    ({"tx_power_w": -1.0}, "tx_power_w"),
    ({"delay_budget_s": 0.0}, "delay_budget_s"),
    ({"lam_delay": -0.5}, "lam_delay"),
    ({"lam_energy": 1e35}, "lam_energy"),
    ({"interference_lo_w": 2.0}, "interference_lo_w"),  # empty range lo > hi
    ({"min_distance_m": 600.0}, "min_distance_m"),
    ({"encoder_compute": [1.0, 2.0]}, "encoder_feature_bits"),
    ({"encoder_compute": [1.0, 0.0, 3.0]}, "encoder_compute"),
    ({"encoder_compute": [1.0, "x", 3.0]}, "encoder_compute"),
    # accepted by the interval checks, but not representable or not finite in float32:
    ({"tx_power_w": 1e39}, "tx_power_w"),
    ({"interference_lo_w": 1e-60}, "interference_lo_w"),
    ({"pathloss_exp": 20.0}, "path gain"),
    ({"tx_power_w": 1e-34}, "SINR"),
    ({"bs_freq_lo_hz": 1e9, "bs_freq_hi_hz": 1e20}, "energy"),
    ({"cell_radius_m": 1e20}, "distance"),
    ({"image_bits_hi": 1e38, "user_cycles_hi_per_bit": 1e10}, "delay"),
]


@pytest.mark.parametrize("overrides,culprit", BAD_PARAMS)
def test_bad_params_are_refused_naming_the_culprit(overrides, culprit):
    with pytest.raises(ValueError, match=culprit):
        EnvParams.from_dict(overrides)


def test_params_that_are_not_a_mapping_are_refused():
    with pytest.raises(ValueError, match="mapping"):
        EnvParams.from_dict([1, 2])


def _draw_params(rng: np.random.Generator) -> dict:
    """One parameter set from a space far wider than the defaults: each positive scalar scaled
    by 10^U(-3, 3), or (one in ten) by 10^U(-40, 40); ranges kept ordered. The encoder costs stay
    the table's (the env refuses others)."""
    out = {}
    for name, v in EnvParams().to_dict().items():
        if isinstance(v, list) or v == 0.0:
            out[name] = v
        else:
            width = 40 if rng.random() < 0.1 else 3
            out[name] = v * 10.0 ** rng.uniform(-width, width)
    out["pathloss_exp"] = float(rng.uniform(0.1, 12.0))
    for lo, hi in (("interference_lo_w", "interference_hi_w"), ("bs_freq_lo_hz", "bs_freq_hi_hz"),
                   ("bs_cycles_lo_per_bit", "bs_cycles_hi_per_bit"),
                   ("min_distance_m", "cell_radius_m"), ("image_bits_lo", "image_bits_hi"),
                   ("user_freq_lo_hz", "user_freq_hi_hz"),
                   ("user_cycles_lo_per_bit", "user_cycles_hi_per_bit")):
        a, b = sorted((out[lo], out[hi]))
        out[lo], out[hi] = a, b
    return out


@pytest.mark.parametrize("obs_mode,score", [("full", "table"), ("paper", "features")])
def test_every_accepted_parameter_set_gives_finite_observations_and_rewards(obs_mode, score):
    """A property-based sweep over the accepted space: 400 random parameter sets, far outside
    the defaults; each one the validator accepts runs whole episodes (random legal actions) and
    every observation column, reward and info value must be finite in float32."""
    env = SemComEnv(4, 6, obs_mode=obs_mode, score=score)
    rng = np.random.default_rng(0)
    accepted, refused = [], 0
    for _ in range(400):
        d = _draw_params(rng)
        try:
            accepted.append(env.check_params(EnvParams.from_dict(d)))
        except ValueError:
            refused += 1
    # The sweep reaches both sides of the boundary, so it tests the validator's edge.
    assert len(accepted) >= 40 and refused >= 40, (len(accepted), refused)
    batch = jax.tree.map(lambda *x: jnp.asarray(x, jnp.float32), *accepted)

    def episode(key, params):
        k_reset, k_act = jax.random.split(key)
        obs, state = env.reset(k_reset, params)
        obs_all, rewards, infos = [obs], [], []
        for t in range(env.num_users):
            a = env.actions.uniform_legal(jax.random.fold_in(k_act, t), obs.action_mask)
            obs, state, r, _, info = env.step_env(jax.random.fold_in(k_act, 100 + t), state, a,
                                              params)
            obs_all.append(obs)
            rewards.append(r)
            infos.append(info)
        return obs_all, rewards, infos

    keys = jax.random.split(jax.random.PRNGKey(1), len(accepted))
    for leaf in jax.tree.leaves(jax.jit(jax.vmap(jax.vmap(episode, (0, None)), (None, 0)))(
            keys[:8], batch)):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.floating):
            assert np.all(np.isfinite(leaf))


def test_range_check_corners_are_the_generators_extreme_draws():
    """The check evaluates the physics at FINE/COARSE_EXTREMES: they must be exactly the most
    extreme uniforms the generator can produce (all-zero and all-one random bits)."""
    from semcom_jax.env.bits import open_unit
    from semcom_jax.physics.instance import COARSE_EXTREMES, FINE_EXTREMES

    lo, hi = np.asarray(open_unit(jnp.array([0, 2**32 - 1], jnp.uint32)))
    assert (lo, hi) == tuple(np.float32(x) for x in FINE_EXTREMES)
    gen = jax.jit(SemComEnv(1, 1).generator)
    params = EnvParams(user_freq_lo_hz=1.0, user_freq_hi_hz=1.0 + 65536.0)
    draws = np.asarray(jax.vmap(lambda k: gen(k, params).user_freq_hz[0])(
        jax.random.split(jax.random.PRNGKey(0), 20000)))
    # user clock = lo + x * 65536, x = (n + 0.5) / 65536: every draw lies within the corners.
    assert np.all(draws - 1.0 >= 65536 * COARSE_EXTREMES[0] - 1e-3)
    assert np.all(draws - 1.0 <= 65536 * COARSE_EXTREMES[1] + 1e-3)


def test_float32_check_accepts_sensible_changes():
    for d in ({}, {"tx_power_w": 5.0}, {"pathloss_exp": 4.0}, {"cell_radius_m": 5000.0},
              {"interference_lo_w": 1e-15}, {"lam_delay": 0.0, "zeta_bs": 0.0}):
        EnvParams.from_dict(d)
