import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.physics import link
from semcom_jax.env import SemComEnv, uniform_legal_action
from semcom_jax.env.wrappers import VecEnv


def play(env, key, policy_key, params=None, actions=None):
    """Plays one episode with random legal actions (or given ones); returns per-step data."""
    params = params or env.default_params
    k_reset, k_steps = jax.random.split(key)
    obs, state = env.reset(k_reset, params)
    out = []
    for t in range(env.num_users):
        if actions is None:
            policy_key, sub = jax.random.split(policy_key)
            a = uniform_legal_action(sub, obs.action_mask, env)
        else:
            a = actions[t]
        assert bool(obs.action_mask[a]) or actions is not None
        k_steps, sub = jax.random.split(k_steps)
        obs, state, r, done, info = env.step_env(sub, state, a, params)
        out.append((int(a), float(r), bool(done), info, state))
    return out


@pytest.mark.parametrize("u,q", [(5, 10), (3, 3), (6, 4)])
def test_episode_length_and_unique_rbs(u, q):
    env = SemComEnv(u, q)
    for seed in range(5):
        steps = play(env, jax.random.PRNGKey(seed), jax.random.PRNGKey(100 + seed))
        dones = [d for _, _, d, _, _ in steps]
        assert dones == [False] * (u - 1) + [True]
        final = steps[-1][4]
        rbs = np.asarray(final.rb)
        served = rbs[rbs >= 0]
        assert len(set(served.tolist())) == len(served)  # no RB allocated twice
        assert int(np.sum(np.asarray(final.rb_used))) == len(served)
        # Legal play serves exactly the users not sent "no RB" (which is legal at every size).
        assert len(served) == sum(a != env.no_rb_action for a, *_ in steps)


def test_dense_and_terminal_returns_agree():
    for score in ("table", "features"):
        e_t = SemComEnv(5, 10, reward="terminal", score=score)
        e_d = SemComEnv(5, 10, reward="dense", score=score)
        for seed in range(4):
            t = play(e_t, jax.random.PRNGKey(seed), jax.random.PRNGKey(seed + 7))
            d = play(e_d, jax.random.PRNGKey(seed), jax.random.PRNGKey(seed + 7))
            assert [a for a, *_ in t] == [a for a, *_ in d]
            rt = [r for _, r, *_ in t]
            assert rt[:-1] == [0.0] * 4
            assert math.isclose(sum(rt), sum(r for _, r, *_ in d), rel_tol=1e-5, abs_tol=1e-5)


def test_same_key_same_episode_and_different_key_differs():
    env = SemComEnv(5, 10, score="features")
    a = play(env, jax.random.PRNGKey(1), jax.random.PRNGKey(2))
    b = play(env, jax.random.PRNGKey(1), jax.random.PRNGKey(2))
    c = play(env, jax.random.PRNGKey(9), jax.random.PRNGKey(2))
    assert [x[1] for x in a] == [x[1] for x in b]
    assert [x[1] for x in a] != [x[1] for x in c]


def test_vmapped_batch_equals_python_loop():
    env = SemComEnv(5, 10, obs_mode="full")
    p = env.default_params
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    obs_b, st_b = jax.vmap(env.reset, (0, None))(keys, p)
    acts = jnp.array([0, 3, 11, 29, 7, 5, 14, 22])
    step_keys = jax.random.split(jax.random.PRNGKey(1), 8)
    out_b = jax.jit(jax.vmap(env.step, (0, 0, 0, None)))(step_keys, st_b, acts, p)
    reset, step = jax.jit(env.reset), jax.jit(env.step)  # one env at a time
    for i in range(8):
        o, s = reset(keys[i], p)
        np.testing.assert_allclose(np.asarray(o.features), np.asarray(obs_b.features[i]), rtol=1e-6)
        out = step(step_keys[i], s, acts[i], p)
        chex.assert_trees_all_close(out, jax.tree.map(lambda x: x[i], out_b), rtol=1e-5)


def test_step_reward_matches_independent_computation():
    env = SemComEnv(2, 3, reward="dense")
    p = env.default_params
    obs, st = env.reset(jax.random.PRNGKey(4), p)
    inst = st.instance
    a = 1 * 3 + 2  # encoder 1 on RB 2
    _, st2, r, _, info = env.step_env(jax.random.PRNGKey(0), st, a, p)
    d = float(inst.distance_m[0])
    s = 0.2 * float(inst.fading[0]) * d**-2 / (float(inst.interference_w[2]) + 20e6 * 4e-21)
    rate = 20e6 * math.log2(1 + s)
    delay = (float(inst.bs_cycles_per_bit) * float(inst.image_bits[0]) * 3.96 / float(inst.bs_freq_hz)
             + 16384 / rate + float(inst.user_cycles_per_bit[0]) * 16384 / float(inst.user_freq_hz[0]))
    energy = (1e-24 * float(inst.bs_freq_hz) ** 2 * float(inst.image_bits[0]) * 3.96
              + 0.2 * 16384 / rate + 1e-28 * float(inst.user_freq_hz[0]) ** 2 * 16384)
    snr = np.asarray(env.table.data.snr_db, np.float64)
    score = np.interp(10 * math.log10(s), snr, np.asarray(env.table.data.score[1], np.float64))
    expected = score - (delay > 0.2) - (energy > 20.0)
    assert math.isclose(float(r), expected, rel_tol=1e-4, abs_tol=1e-4)
    assert int(st2.encoder[0]) == 1 and int(st2.rb[0]) == 2 and bool(st2.rb_used[2])
    assert not bool(info["invalid_action"])


def test_invalid_actions_leave_the_user_unserved():
    env = SemComEnv(3, 3, reward="dense")
    p = env.default_params
    # Invalid: the worst term there is (lowest table score, both budgets violated), by hand.
    worst = float(np.min(np.asarray(env.table.data.score))) - p.lam_delay - p.lam_energy
    obs, st = env.reset(jax.random.PRNGKey(0), p)
    obs, st, r, _, info = env.step_env(jax.random.PRNGKey(1), st, 4, p)  # encoder 1, RB 1
    assert not bool(obs.action_mask[1]) and not bool(obs.action_mask[4]) and not bool(obs.action_mask[7])
    for bad in (1, 7, -1, 10, 1000):  # used RB (two encoders), negative, out of range
        _, st_bad, r_bad, _, info_bad = env.step_env(jax.random.PRNGKey(2), st, bad, p)
        assert bool(info_bad["invalid_action"]) and not bool(info_bad["served"])
        assert math.isclose(float(r_bad), worst, rel_tol=1e-6)
        assert int(st_bad.rb[1]) == -1 and int(jnp.sum(st_bad.rb_used)) == 1
        assert bool(info_bad["delay_violation"])


def test_stepping_a_finished_episode_changes_nothing():
    env = SemComEnv(1, 2)
    p = env.default_params
    _, st = env.reset(jax.random.PRNGKey(0), p)
    _, st, r, done, _ = env.step_env(jax.random.PRNGKey(1), st, 0, p)
    assert bool(done)
    _, st2, r2, done2, info = env.step_env(jax.random.PRNGKey(1), st, 1, p)
    assert bool(done2) and float(r2) == 0.0 and not bool(info["invalid_action"])
    chex.assert_trees_all_equal(st, st2)


def test_no_rb_action_at_every_size():
    env = SemComEnv(4, 2, reward="dense")
    assert env.num_actions == 3 * 2 + 1 and env.no_rb_action == 6
    assert SemComEnv(2, 2).num_actions == 7 and SemComEnv(2, 5).no_rb_action == 15
    p = env.default_params
    obs, st = env.reset(jax.random.PRNGKey(0), p)
    assert bool(obs.action_mask[6])
    for a in (0, 1):  # encoder 0 on both RBs
        obs, st, *_ = env.step_env(jax.random.PRNGKey(0), st, a, p)
    assert list(np.asarray(obs.action_mask)) == [False] * 6 + [True]
    obs, st, r, _, info = env.step_env(jax.random.PRNGKey(0), st, 6, p)
    assert not bool(info["invalid_action"]) and not bool(info["served"])
    assert math.isclose(float(r), float(env.table.data.chance_score) - 1.0, rel_tol=1e-6)


def test_step_compiles_once_and_values_are_finite():
    for mode in ("paper", "full"):
        chex.clear_trace_counter()
        env = SemComEnv(5, 10, obs_mode=mode, score="features")
        p = env.default_params

        @jax.jit
        @chex.assert_max_traces(n=1)
        def step(key, st, a):
            return env.step_env(key, st, a, p)

        obs, st = env.reset(jax.random.PRNGKey(0), p)
        assert obs.features.shape == (env.observation_size,)
        for t in range(5):
            obs, st, r, d, info = step(jax.random.PRNGKey(t), st, jnp.int32(t))
            assert bool(jnp.all(jnp.isfinite(obs.features))) and bool(jnp.isfinite(r))
        # The info keys never change.
        assert set(info) == {"user", "served", "invalid_action", "task_score", "sinr_db",
                             "delay_s", "energy_j", "delay_violation", "energy_violation", "encoder"}


def test_jit_vmap_keeps_structure_and_dtypes():
    env = SemComEnv(5, 10)
    p = env.default_params
    o1, s1 = env.reset(jax.random.PRNGKey(0), p)
    ob, sb = jax.jit(jax.vmap(env.reset, (0, None)))(jax.random.split(jax.random.PRNGKey(0), 3), p)
    assert jax.tree.structure(s1) == jax.tree.structure(sb)
    for a, b in zip(jax.tree.leaves((o1, s1)), jax.tree.leaves((ob, sb))):
        assert a.dtype == b.dtype and b.shape == (3,) + a.shape


def test_generator_draws_in_range():
    env = SemComEnv(50, 60)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(0), 200, p)
    d = np.asarray(inst.distance_m)
    assert d.min() >= p.min_distance_m - 1e-3 and d.max() <= p.cell_radius_m + 1e-3
    np.testing.assert_allclose(np.linalg.norm(np.asarray(inst.user_xy_m), axis=-1), d, rtol=1e-4)
    i = np.asarray(inst.interference_w)
    assert i.min() >= p.interference_lo_w * 0.999 and i.max() <= p.interference_hi_w * 1.001
    assert abs(np.mean(np.log10(i)) - (-4.5)) < 0.1  # log-uniform over 9 decades
    f = np.asarray(inst.fading)
    assert f.min() > 0 and abs(f.mean() - 1.0) < 0.03  # Exp(1)
    # area-uniform: P(d < 250) = (250^2 - 10^2) / (500^2 - 10^2)
    assert abs(np.mean(d < 250) - (250**2 - 100) / (500**2 - 100)) < 0.02
    for name, lo, hi in (("bs_freq_hz", p.bs_freq_lo_hz, p.bs_freq_hi_hz),
                         ("image_bits", p.image_bits_lo, p.image_bits_hi),
                         ("user_freq_hz", p.user_freq_lo_hz, p.user_freq_hi_hz)):
        v = np.asarray(getattr(inst, name))
        sigma_mean = (hi - lo) / math.sqrt(12 * v.size)
        assert v.min() >= lo and v.max() <= hi and abs(v.mean() - (lo + hi) / 2) < 5 * sigma_mean


@pytest.mark.parametrize("rng", ["threefry", "hash"])
@pytest.mark.parametrize("batched", [False, True])
def test_uniform_legal_action_is_legal_and_uniform(rng, batched):
    # One key per mask (vmapped) and one key for a batch of masks both draw uniformly.
    for u, q in ((5, 10), (6, 4)):
        env = SemComEnv(u, q)
        mask = jnp.ones(env.num_actions, bool).at[jnp.array([1, 1 + q, 1 + 2 * q])].set(False)
        if batched:
            acts = env.actions.uniform_legal(jax.random.PRNGKey(0),
                                             jnp.broadcast_to(mask, (200, 200, mask.size)), rng)
            acts = acts.reshape(-1)
        else:
            acts = jax.vmap(lambda k: env.actions.uniform_legal(k, mask, rng))(
                jax.random.split(jax.random.PRNGKey(0), 40000))
        counts = np.bincount(np.asarray(acts), minlength=env.num_actions)
        legal = np.asarray(mask)
        assert counts[~legal].sum() == 0
        expected = 40000 / legal.sum()
        assert np.all(np.abs(counts[legal] - expected) < 5 * math.sqrt(expected))


def test_vec_env_resets_every_u_steps_and_matches_env():
    env = SemComEnv(3, 4, reward="dense")
    p = env.default_params
    venv = VecEnv(env, 4)
    obs, vs = venv.reset(jax.random.PRNGKey(0), p)
    step = jax.jit(venv.step)
    legal = jax.jit(lambda k, m: uniform_legal_action(k, m, env))
    first_inst = vs.env_state.instance.interference_w
    for t in range(7):
        a = legal(jax.random.PRNGKey(t), obs.action_mask)
        obs, vs, r, done, info = step(jax.random.PRNGKey(50 + t), vs, a, p)
        assert bool(jnp.all(done)) == (t % 3 == 2)
        assert int(vs.clock) == (t + 1) % 3
        if t == 2:
            assert not bool(jnp.allclose(vs.env_state.instance.interference_w, first_inst))
            assert int(jnp.sum(vs.env_state.rb_used)) == 0 and bool(jnp.all(obs.action_mask))


def test_step_auto_resets_under_vmap_like_gymnax():
    env = SemComEnv(2, 3)
    p = env.default_params
    obs, st = jax.vmap(env.reset, (0, None))(jax.random.split(jax.random.PRNGKey(0), 5), p)
    step = jax.jit(jax.vmap(env.step, (0, 0, 0, None)))
    for t in range(4):
        keys = jax.random.split(jax.random.PRNGKey(t), 5)
        before = st
        obs, st, r, d, _ = step(keys, st, jnp.zeros(5, jnp.int32) + t % 2, p)
        assert bool(jnp.all(d == (t % 2 == 1)))
        assert bool(jnp.all(st.step == (t + 1) % 2)) and bool(jnp.all(st.time == st.step))
        if t % 2 == 1:  # the fresh episode is the one reset_env draws from the step key's half
            fresh_obs, fresh = jax.vmap(lambda k: env.reset_env(jax.random.split(k)[1], p))(keys)
            # Same draw; the observation is compiled in another program, so up to rounding.
            chex.assert_trees_all_close((obs, st), (fresh_obs, fresh), rtol=1e-5, atol=1e-6)
            assert not bool(jnp.allclose(st.instance.fading, before.instance.fading))
        else:
            assert int(jnp.sum(st.rb_used)) == 5  # action 0 took RB 0 in each env


def test_stepping_past_the_end_cannot_happen_through_step():
    """The trap of the old API: a finished episode stepped again paid 0 forever. ``step``
    starts a new episode instead, whose steps pay again."""
    env = SemComEnv(2, 3, reward="dense")
    p = env.default_params
    obs, st = env.reset(jax.random.PRNGKey(0), p)
    rewards, dones = [], []
    for t in range(6):
        a = env.actions.uniform_legal(jax.random.PRNGKey(10 + t), obs.action_mask)
        obs, st, r, d, _ = env.step(jax.random.PRNGKey(t), st, a, p)
        rewards.append(float(r))
        dones.append(bool(d))
    assert dones == [False, True] * 3
    assert all(r != 0.0 for r in rewards)
    # step_env is the primitive without reset: past the end nothing changes and it pays 0.
    _, end, _, done, _ = env.step_env(jax.random.PRNGKey(0), st.replace(step=jnp.int32(2)), 0, p)
    _, again, r, done2, _ = env.step_env(jax.random.PRNGKey(1), end, 1, p)
    assert bool(done2) and float(r) == 0.0
    chex.assert_trees_all_equal(end, again)


def test_invalid_action_pays_the_worst_term_below_no_rb():
    env = SemComEnv(3, 4, reward="dense")
    p = env.default_params
    _, st = env.reset(jax.random.PRNGKey(0), p)
    _, st, *_ = env.step_env(jax.random.PRNGKey(1), st, 0, p)  # encoder 0 on RB 0
    _, s_bad, r_bad, _, info = env.step_env(jax.random.PRNGKey(2), st, 0, p)  # RB 0 again
    _, s_out, r_out, _, info_out = env.step_env(jax.random.PRNGKey(2), st, 999, p)  # no action
    _, s_none, r_none, _, info_none = env.step_env(jax.random.PRNGKey(2), st, env.no_rb_action, p)
    table = env.table.data
    lowest = float(np.min(np.asarray(table.score)))
    worst = min(lowest - p.lam_delay - p.lam_energy, float(table.chance_score) - p.lam_delay)
    np.testing.assert_allclose(float(r_bad), worst, rtol=1e-6)
    np.testing.assert_allclose(float(r_out), worst, rtol=1e-6)
    np.testing.assert_allclose(float(r_none), float(table.chance_score) - p.lam_delay, rtol=1e-6)
    assert float(r_bad) < float(r_none)
    assert bool(info["invalid_action"]) and bool(info_out["invalid_action"])
    assert not bool(info_none["invalid_action"])
    # The user is left unserved, as by "no RB": same state apart from the stored term.
    chex.assert_trees_all_equal(s_bad.replace(user_reward=s_none.user_reward), s_none)
    # The penalty is configurable and lowers the term further.
    harsh = p.replace(invalid_action_penalty=5.0)
    _, _, r_harsh, _, _ = env.step_env(jax.random.PRNGKey(2), st, 0, env.check_params(harsh))
    np.testing.assert_allclose(float(r_harsh), worst - 5.0, rtol=1e-6)
    with pytest.raises(ValueError, match="invalid_action_penalty"):
        env.check_params(p.replace(invalid_action_penalty=-1.0))


def test_max_steps_in_episode_is_the_number_of_users():
    env = SemComEnv(4, 6)
    assert env.default_params.max_steps_in_episode == 4
    from semcom_jax.physics.params import EnvParams
    assert env.check_params(EnvParams()).max_steps_in_episode == 4  # 0 means "U"
    with pytest.raises(ValueError, match="max_steps_in_episode.*num_users=4"):
        env.check_params(env.default_params.replace(max_steps_in_episode=3))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="obs_mode"):
        SemComEnv(obs_mode="partial")
    with pytest.raises(ValueError, match="reward"):
        SemComEnv(reward="sparse")
    with pytest.raises(ValueError, match="num_users"):
        SemComEnv(0, 3)
    with pytest.raises(ValueError, match="num_envs"):
        VecEnv(SemComEnv(), 0)
    env = SemComEnv()
    with pytest.raises(ValueError, match="tx_power_w"):
        env.check_params(env.default_params.replace(tx_power_w=-1.0))


def test_sinr_helper_consistent_with_observation():
    env = SemComEnv(4, 5, obs_mode="full")
    p = env.default_params
    obs, st = env.reset(jax.random.PRNGKey(0), p)
    s = link.user_sinr(st.instance, p, 0, jnp.arange(5))
    tail = np.asarray(obs.features[-(5 + 3):-3])
    np.testing.assert_allclose(tail, 10 * np.log10(np.asarray(s)) / 30, rtol=1e-5)
