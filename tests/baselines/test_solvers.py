import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.baselines import report, solvers
from semcom_jax.env import SemComEnv


def brute_force(value, unserved):
    """Best total over every assignment of distinct RBs (or 'unserved') and every encoder."""
    u, k, q = value.shape
    # Encoders are enumerated explicitly, so the check does not assume that the best encoder of
    # each (user, RB) pair can be chosen independently, as the solver does.
    choices = list(range(q)) + [-1]
    best = -np.inf
    for rbs in itertools.product(choices, repeat=u):
        used = [r for r in rbs if r >= 0]
        if len(set(used)) != len(used):
            continue
        for encs in itertools.product(range(k), repeat=u):
            tot = sum(value[i, encs[i], rbs[i]] if rbs[i] >= 0 else unserved[i] for i in range(u))
            best = max(best, tot)
    return best


@pytest.mark.parametrize("u,q", [(2, 3), (3, 3), (3, 5), (4, 2)])
def test_optimum_equals_brute_force(u, q):
    env = SemComEnv(u, q)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(u * 10 + q), 6, p)
    at = solvers.batched_action_tables(inst, p, env.table.data)
    enc, rbs = solvers.optimum(at)
    stats = solvers.assignment_stats(at, jnp.asarray(enc), jnp.asarray(rbs))
    value = np.asarray(at.value, np.float64)
    uns = np.asarray(at.unserved_value, np.float64)
    for i in range(6):
        bf = brute_force(value[i], uns[i])
        assert math.isclose(float(stats.episode_return[i]), bf, rel_tol=1e-5, abs_tol=1e-4)


def test_optimal_actions_played_in_env_give_the_optimum():
    env = SemComEnv(4, 6, reward="dense")
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(3), 5, p)
    at = solvers.batched_action_tables(inst, p, env.table.data)
    enc, rbs = solvers.optimum(at)
    stats = solvers.assignment_stats(at, jnp.asarray(enc), jnp.asarray(rbs))
    for i in range(5):
        obs, st = env.reset_to(jax.tree.map(lambda x: x[i], inst), p)
        total = 0.0
        for t in range(4):
            a = (env.no_rb_action if rbs[i, t] < 0
                 else int(env.actions.encode(enc[i, t], rbs[i, t])))
            assert bool(obs.action_mask[a])
            obs, st, r, d, _ = env.step_env(jax.random.PRNGKey(0), st, a, p)
            total += float(r)
        assert math.isclose(total, float(stats.episode_return[i]), rel_tol=1e-5, abs_tol=1e-4)


def test_baselines_are_bounded_by_the_optimum_and_normalised():
    env = SemComEnv(5, 10)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(0), 64, p)
    at = solvers.batched_action_tables(inst, p, env.table.data)
    opt = solvers.assignment_stats(at, *map(jnp.asarray, solvers.optimum(at))).episode_return
    gk, gq = solvers.greedy(at)
    greedy = solvers.assignment_stats(at, gk, gq).episode_return
    assert bool(jnp.all(greedy <= opt + 1e-4))
    for k in range(3):
        fixed = solvers.assignment_stats(at, *map(jnp.asarray, solvers.optimum(at, k))).episode_return
        assert bool(jnp.all(fixed <= opt + 1e-4))
    rep = report.baseline_report(inst, p, env.table.data, jax.random.PRNGKey(1),
                                 env.encoder_names)
    assert math.isclose(rep["optimum"]["normalised"], 1.0) and math.isclose(rep["random"]["normalised"], 0.0)
    assert rep["random"]["return"] < rep["greedy"]["return"] <= rep["optimum"]["return"]
    # The trade-off is real: the optimum mixes encoders and no single encoder is optimal.
    assert sum(s > 0.05 for s in rep["optimum"]["encoder_share"]) >= 2
    assert all(rep[f"fixed {n}"]["return"] < rep["optimum"]["return"] for n in env.encoder_names)
    assert "optimum" in report.format_report(rep, env.encoder_names)


def test_paper_greedy_and_ceiling_play_on_the_expected_terms():
    """The report's paper greedy is greedy played on the expected terms and its ceiling the
    optimum of those terms, both valued on the true ones (recomputed here from the expected
    tables of the same draws); without the true terms both do worse than greedy / optimum."""
    env = SemComEnv(4, 6)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(2), 8, p)
    at = solvers.batched_action_tables(inst, p, env.table.data)
    rep = report.baseline_report(inst, p, env.table.data, jax.random.PRNGKey(1),
                                 env.encoder_names, ceiling_draws=16,
                                 ceiling_key=jax.random.PRNGKey(7))
    expected, _ = solvers.expected_action_tables(inst, p, env.table.data,
                                                 jax.random.PRNGKey(7), 16)
    want = solvers.assignment_stats(at, *solvers.greedy(expected)).episode_return
    assert math.isclose(rep[report.PAPER_GREEDY]["return"], float(jnp.mean(want)), rel_tol=1e-6)
    ceiling = solvers.assignment_stats(at, *map(jnp.asarray, solvers.optimum(expected)))
    assert math.isclose(rep[report.CEILING]["return"], float(jnp.mean(ceiling.episode_return)),
                        rel_tol=1e-6)
    assert rep[report.PAPER_GREEDY]["return"] < rep["greedy"]["return"]
    assert rep[report.CEILING]["return"] < rep["optimum"]["return"]


def test_greedy_matches_a_python_loop():
    env = SemComEnv(4, 5)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(5), 3, p)
    at = solvers.batched_action_tables(inst, p, env.table.data)
    gk, gq = solvers.greedy(at)
    value = np.asarray(at.value)
    unserved = np.asarray(at.unserved_value)
    for i in range(3):
        used = set()
        for u in range(4):
            best, arg = -np.inf, None
            for k in range(3):
                for q in range(5):
                    if q not in used and value[i, u, k, q] > best:
                        best, arg = value[i, u, k, q], (k, q)
            if unserved[i, u] > best:  # staying unserved pays more: greedy takes it
                arg = (0, -1)
            used.add(arg[1])
            assert (int(gk[i, u]), int(gq[i, u])) == arg


def test_random_policy_is_legal():
    env = SemComEnv(6, 4)
    p = env.default_params
    at = solvers.batched_action_tables(env.sample_instances(jax.random.PRNGKey(0), 4, p), p,
                                       env.table.data)
    rk, rq = solvers.random_policy(at, jax.random.PRNGKey(1), draws=8)
    rq = np.asarray(rq)
    for row in rq.reshape(-1, 6):
        served = row[row >= 0]
        assert len(set(served.tolist())) == len(served)
    assert (rq == -1).any()  # with U > Q some users go unserved


def test_random_policy_is_uniform_over_the_legal_actions():
    """Empirical frequencies of 40,000 plays against the exact probabilities: the first user
    picks each of K Q + 1 actions with probability 1 / 10; after it took RB 0 with encoder 1, the
    second picks each of the K (Q - 1) + 1 = 7 left with probability 1 / 7."""
    env = SemComEnv(2, 3)
    p = env.default_params
    at = solvers.batched_action_tables(env.sample_instances(jax.random.PRNGKey(0), 1, p), p,
                                       env.table.data)
    n = 40_000
    rk, rq = (np.asarray(x)[0] for x in solvers.random_policy(at, jax.random.PRNGKey(3), n))
    first = np.where(rq[:, 0] >= 0, rq[:, 0] * 3 + rk[:, 0], 9)
    freq = np.bincount(first, minlength=10) / n
    assert np.all(np.abs(freq - 0.1) < 5 * np.sqrt(0.1 * 0.9 / n))
    cond = (rq[:, 0] == 0) & (rk[:, 0] == 1)
    second = np.where(rq[cond, 1] >= 0, rq[cond, 1] * 3 + rk[cond, 1], 9)
    freq2 = np.bincount(second, minlength=10) / cond.sum()
    assert np.all(freq2[:3] == 0)  # RB 0 is taken
    assert np.all(np.abs(freq2[3:] - 1 / 7) < 5 * np.sqrt((1 / 7) * (6 / 7) / cond.sum()))
