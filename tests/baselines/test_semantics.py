"""Model semantics: "no RB" at every size, nothing beats the exact optimum, info tells the truth,
the paper observation's ceiling, monotone tables."""

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.baselines.evaluate import Evaluator
from semcom_jax.baselines import report, solvers
from semcom_jax.tables.scoring import make_monotone
from semcom_jax.env import SemComEnv
from semcom_jax.tables import TableError, TableWarning, load_default_table, load_table, save_table


def _optimum_returns(env, p, inst):
    at = solvers.batched_action_tables(inst, p, env.table.data)
    enc, rbs = solvers.optimum(at)
    return at, np.asarray(solvers.assignment_stats(at, jnp.asarray(enc),
                                                    jnp.asarray(rbs)).episode_return)


def _play(env, p, instance, policy):
    """Dense-reward return of ``policy(obs, state, t) -> action`` on one instance."""
    reset_to, step = _jitted(env)
    obs, st = reset_to(instance, p)
    total = 0.0
    for t in range(env.num_users):
        obs, st, r, _, _ = step(jax.random.PRNGKey(t), st, jnp.int32(policy(obs, st, t)), p)
        total += float(r)
    return total


@functools.lru_cache
def _jitted(env):
    """The env's ``reset_to`` and ``step``, compiled once per env (not once per episode)."""
    return jax.jit(env.reset_to), jax.jit(env.step)


@pytest.mark.slow
@pytest.mark.parametrize("u,q", [(3, 5), (4, 4), (5, 2)])
def test_no_action_sequence_beats_the_optimum(u, q):
    env = SemComEnv(u, q, reward="dense")
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(10 * u + q), 6, p)
    at, opt = _optimum_returns(env, p, inst)
    value, unserved = np.asarray(at.value), np.asarray(at.unserved_value)
    rng = np.random.default_rng(0)
    a_max = env.num_actions
    uniform_legal = jax.jit(env.actions.uniform_legal)
    for i in range(6):
        one = jax.tree.map(lambda x: x[i], inst)

        def myopic(obs, st, t):  # adversary: best of any RB (used or not) and "no RB"
            k, rb = np.unravel_index(np.argmax(value[i, t]), value[i, t].shape)
            if unserved[i, t] >= value[i, t, k, rb]:
                return env.no_rb_action
            return int(env.actions.encode(k, rb))

        policies = [
            myopic,
            lambda obs, st, t: rng.integers(-2, a_max + 3),  # anything, legal or not
            lambda obs, st, t: env.no_rb_action,
            lambda obs, st, t: 0,  # RB 0 again and again: invalid after the first user
            lambda obs, st, t: int(uniform_legal(jax.random.PRNGKey(t + 100 * i),
                                                 obs.action_mask)),
        ]
        for policy in policies:
            for _ in range(2):
                r = _play(env, p, one, policy)
                assert r <= opt[i] + 1e-4, (i, r, opt[i])


def test_the_optimum_leaves_users_unserved_when_that_pays_more():
    # U < Q: before, the optimum had to serve everyone even on RBs worse than not serving.
    env = SemComEnv(5, 10)
    p = env.default_params
    at, _ = _optimum_returns(env, p, env.sample_instances(jax.random.PRNGKey(0), 256, p))
    enc, rbs = solvers.optimum(at)
    value, unserved = np.asarray(at.value), np.asarray(at.unserved_value)
    served = rbs >= 0
    assert (~served).any()
    n, u = np.nonzero(served)
    served_vals = value[n, u, enc[n, u], rbs[n, u]]
    assert np.all(served_vals >= unserved[n, u] - 1e-6)  # nobody served below the unserved term


def test_info_tells_the_truth_for_unserved_and_served_users():
    env = SemComEnv(3, 3, reward="dense")
    p = env.default_params
    chance = float(env.table.data.chance_score)
    obs, st = env.reset(jax.random.PRNGKey(0), p)
    obs, st, r, _, info = env.step_env(jax.random.PRNGKey(1), st, 4, p)  # served: encoder 1, RB 1
    assert bool(info["served"]) and np.isfinite(float(info["delay_s"]))
    assert float(info["energy_j"]) > 0 and np.isfinite(float(info["sinr_db"]))
    assert bool(info["delay_violation"]) == (float(info["delay_s"]) > p.delay_budget_s)
    expect = (float(info["task_score"]) - p.lam_delay * float(info["delay_violation"])
              - p.lam_energy * float(info["energy_violation"]))
    assert math.isclose(float(r), expect, rel_tol=1e-6, abs_tol=1e-6)
    for a in (env.no_rb_action, 1, 1000, -1):  # no RB, used RB, out of range, negative
        _, _, r, _, info = env.step_env(jax.random.PRNGKey(2), st, a, p)
        assert not bool(info["served"]) and bool(info["invalid_action"]) == (a != env.no_rb_action)
        assert float(info["delay_s"]) == math.inf and float(info["energy_j"]) == 0.0
        assert float(info["sinr_db"]) == -math.inf and float(info["task_score"]) == chance
        assert bool(info["delay_violation"]) and not bool(info["energy_violation"])
        assert int(info["encoder"]) == -1
        # "no RB" pays the unserved term; an invalid action the worst term there is.
        worst = min(float(np.min(np.asarray(env.table.data.score))) - p.lam_delay
                    - p.lam_energy, chance - p.lam_delay)
        expect = chance - p.lam_delay if a == env.no_rb_action else worst
        assert math.isclose(float(r), expect, rel_tol=1e-6)


def test_evaluators_share_held_out_episodes_only_when_everything_matches():
    env = SemComEnv(2, 3)
    p = env.default_params
    a = Evaluator(env, p, 8, seed=1, ceiling_draws=4)
    b = Evaluator(SemComEnv(2, 3), p, 8, seed=1, ceiling_draws=4)
    assert a.instances is b.instances and a.baselines == b.baselines
    assert a.baselines is not b.baselines  # each its own copy of the report
    for other in (Evaluator(env, p.replace(tx_power_w=0.02), 8, seed=1, ceiling_draws=4),
                  Evaluator(env, p, 8, seed=2, ceiling_draws=4),
                  Evaluator(SemComEnv(2, 3, obs_mode="full"), p, 8, seed=1)):
        assert other.instances is not a.instances
        assert other.baselines != a.baselines


def test_unserved_rate_is_reported_by_every_baseline():
    env = SemComEnv(6, 3)
    ev = Evaluator(env, env.default_params, 32, seed=1, ceiling_draws=8)
    for name, entry in ev.baselines.items():
        assert 0.0 <= entry["unserved_rate"] <= 1.0, name
    assert ev.baselines["optimum"]["unserved_rate"] >= 0.5  # 6 users, 3 RBs
    assert "unserved" in report.format_report(ev.baselines, env.encoder_names)


# ----------------------------------------------------------------------------- the ceiling


def test_paper_ceiling_ignores_what_the_paper_observation_hides():
    env = SemComEnv(4, 6)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(0), 8, p)
    other = inst.replace(fading=inst.fading[::-1], image_bits=inst.image_bits[::-1],
                         user_freq_hz=inst.user_freq_hz[::-1],
                         bs_freq_hz=inst.bs_freq_hz[::-1])  # same positions and interference
    key = jax.random.PRNGKey(3)
    a, _ = solvers.expected_action_tables(inst, p, env.table.data, key, 64)
    b, _ = solvers.expected_action_tables(other, p, env.table.data, key, 64)
    np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value))
    changed = inst.replace(distance_m=inst.distance_m * 1.5)  # what it does see matters
    c, _ = solvers.expected_action_tables(changed, p, env.table.data, key, 64)
    assert not np.allclose(np.asarray(a.value), np.asarray(c.value))


def test_expected_terms_converge_to_a_fine_monte_carlo_estimate():
    env = SemComEnv(2, 3)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(4), 1, p)
    coarse, se = solvers.expected_action_tables(inst, p, env.table.data,
                                                jax.random.PRNGKey(1), 512)
    fine, _ = solvers.expected_action_tables(inst, p, env.table.data,
                                             jax.random.PRNGKey(2), 16384)
    err = np.abs(np.asarray(coarse.value) - np.asarray(fine.value))
    assert np.all(err <= 5 * np.asarray(se) + 1e-4)  # within the stated Monte-Carlo error


def test_no_paper_policy_beats_the_paper_ceiling_on_average():
    env = SemComEnv(4, 6)
    p = env.default_params
    n = 512
    inst = env.sample_instances(jax.random.PRNGKey(7), n, p)
    at = solvers.batched_action_tables(inst, p, env.table.data)
    exp_at, _ = solvers.expected_action_tables(inst, p, env.table.data,
                                               jax.random.PRNGKey(8), 256)

    def mean_return(enc, rbs):
        return float(jnp.mean(solvers.assignment_stats(at, jnp.asarray(enc),
                                                       jnp.asarray(rbs)).episode_return))

    ceiling = mean_return(*solvers.optimum(exp_at))
    greedy_expected = mean_return(*solvers.greedy(exp_at))  # greedy on the expected terms
    rng = np.random.default_rng(0)
    for _ in range(20):  # random search over fixed assignments, the only paper-mode policies
        rbs = np.stack([rng.permutation(np.r_[np.arange(6), -np.ones(4, int)])[:4]
                        for _ in range(n)])
        enc = rng.integers(0, 3, size=(n, 4))
        assert mean_return(enc, rbs) < ceiling
    assert greedy_expected <= ceiling + 1e-6
    assert ceiling < mean_return(*solvers.optimum(at))  # hidden information has a value


@pytest.mark.slow
def test_evaluator_reports_both_normalisations():
    env = SemComEnv(3, 4, obs_mode="paper")
    ev = Evaluator(env, env.default_params, 64, seed=0, ceiling_draws=32)
    assert ev.ceiling == report.CEILING and ev.ceiling_se is not None
    assert math.isclose(ev.baselines[report.CEILING]["normalised_ceiling"], 1.0)
    assert ev.baselines[report.CEILING]["normalised"] <= 1.0 + 1e-9
    full = Evaluator(SemComEnv(3, 4, obs_mode="full"), env.default_params, 64, seed=0)
    assert full.ceiling == "optimum" and report.CEILING not in full.baselines
    logits = lambda params, obs: jnp.zeros(obs.action_mask.shape)  # noqa: E731
    out = jax.jit(lambda: ev.evaluate(logits, None))()
    r = float(out["eval_return"])
    assert math.isclose(float(out["eval_normalised_ceiling"]),
                        (r - ev.r_random) / (ev.r_ceiling - ev.r_random), rel_tol=1e-5)
    assert 0.0 <= float(out["eval_unserved_rate"]) <= 1.0


# ----------------------------------------------------------------------------- monotone tables


def test_default_table_is_monotone_and_says_how():
    t = load_default_table()
    score = np.asarray(t.data.score)
    assert np.all(np.diff(score, axis=1) >= 0)
    assert t.metadata["monotone"] is True and "isotonic" in t.metadata["monotone_fit"]


def _table_arrays(score):
    return {"snr_db": np.array([-10.0, 0.0, 10.0], np.float32), "score": np.asarray(score, np.float32)}


def _meta(**kw):
    return {"task": "classification", "encoders": ["a"], "chance_score": -2.3,
            "source": "test", **kw}


def test_loader_refuses_a_non_monotone_table_that_claims_otherwise(tmp_path):
    arrays = _table_arrays([[-3.0, -1.0, -1.5]])
    with pytest.raises(TableError, match="falls by 0.5"):
        save_table(tmp_path / "t.npz", arrays, _meta(monotone=True))
    with pytest.warns(TableWarning, match="falls by 0.5"):
        save_table(tmp_path / "t.npz", arrays, _meta())
    with pytest.warns(TableWarning):
        load_table(tmp_path / "t.npz")


def test_make_monotone_fits_and_records():
    arrays, meta = make_monotone(_table_arrays([[-3.0, -1.0, -1.5], [-2.0, -2.5, 0.0]]), _meta())
    fit = arrays["score"]
    assert np.all(np.diff(fit, axis=1) >= 0)
    np.testing.assert_allclose(fit, [[-3.0, -1.25, -1.25], [-2.25, -2.25, 0.0]])
    np.testing.assert_array_equal(arrays["score_raw"][0], [-3.0, -1.0, -1.5])
    assert meta["monotone"] is True and math.isclose(meta["monotone_max_change"], 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _ = make_monotone(arrays, meta)
