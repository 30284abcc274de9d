"""The baselines in bounded memory: streamed results equal the all-at-once ones, memory does not
grow with the number of draws, and the reduced Hungarian step is still the exact optimum."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from semcom_jax.baselines import report, solvers
from semcom_jax.env import SemComEnv


def largest_intermediate(fn, *args) -> int:
    """Elements of the largest array a traced function creates (inputs excluded), sub-programs
    (scan, while, map bodies) included."""
    def walk(jaxpr):
        best = 0
        for eqn in jaxpr.eqns:
            for v in eqn.outvars:
                best = max(best, int(np.prod(v.aval.shape)) if hasattr(v.aval, "shape") else 0)
            for p in eqn.params.values():
                for sub in (p if isinstance(p, (tuple, list)) else [p]):
                    inner = getattr(sub, "jaxpr", None)
                    if inner is not None:
                        best = max(best, walk(getattr(inner, "jaxpr", inner)))
        return best
    return walk(jax.make_jaxpr(fn)(*args).jaxpr)


def test_random_memory_does_not_grow_with_draws():
    """Nothing of the random baseline grows with the draws but their keys (2 words each): no
    array as large as the plays of every draw, which random_policy keeps."""
    env = SemComEnv(6, 8)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(0), 4, p)
    at = solvers.batched_action_tables(inst, p, env.table.data)
    draws = 1024
    size = largest_intermediate(solvers.random_stats, at,
                                jnp.zeros((4, draws, 2), jnp.uint32))
    plays = 4 * draws * 6
    assert size <= max(4 * 6 * 3 * 8, 4 * draws * 2) < plays
    kept = largest_intermediate(lambda a: solvers.random_policy(a, jax.random.PRNGKey(0), draws),
                                at)
    assert kept >= plays


def test_expected_terms_memory_does_not_grow_with_draws():
    env = SemComEnv(5, 7)
    p = env.default_params
    inst = jax.tree.map(lambda x: x[0], env.sample_instances(jax.random.PRNGKey(0), 1, p))
    per_draw = 5 * 3 * 7
    fn = lambda d: largest_intermediate(  # noqa: E731
        lambda i, k: solvers.expected_action_table(i, p, env.table.data, k, d,
                                                   max_elements=4 * per_draw),
        inst, jax.random.PRNGKey(1))
    # One chunk of 4 draws and its lookups' intermediates (2 per element), whatever the draws.
    assert fn(8) == fn(256) <= 2 * 4 * per_draw


@pytest.mark.parametrize("max_elements", [1, 200, 2**22])
def test_streamed_baselines_equal_the_all_at_once_ones(max_elements):
    """Episodes one at a time (max_elements 1: batch 1, draws one at a time), a few at a time
    with a padded last batch, or all at once: the same statistics, and the random baseline the
    mean of its plays, computed here from random_policy's plays on repeated tables."""
    env = SemComEnv(4, 5)
    p, table = env.default_params, env.table.data
    inst = env.sample_instances(jax.random.PRNGKey(3), 7, p)
    stats, se, gaps = report.baseline_stats(inst, p, table, jax.random.PRNGKey(1),
                                            env.encoder_names,
                                      random_draws=6, ceiling_draws=8,
                                      ceiling_key=jax.random.PRNGKey(2),
                                      max_elements=max_elements)
    at = solvers.batched_action_tables(inst, p, table)
    rk, rq = solvers.random_policy(at, jax.random.PRNGKey(1), 6)
    rep = jax.tree.map(lambda x: jnp.repeat(x, 6, axis=0), at)
    plays = solvers.assignment_stats(rep, rk.reshape(42, 4), rq.reshape(42, 4))
    np.testing.assert_allclose(stats["random"].episode_return,
                               plays.episode_return.reshape(7, 6).mean(1), rtol=1e-5)
    np.testing.assert_allclose(stats["random"].encoder_counts,
                               plays.encoder_counts.reshape(7, 6, 3).mean(1), rtol=1e-6)
    opt = solvers.assignment_stats(at, *map(jnp.asarray, solvers.optimum(at)))
    np.testing.assert_allclose(stats["optimum"].episode_return, opt.episode_return, rtol=1e-6)
    expected, se_all = solvers.expected_action_tables(inst, p, table, jax.random.PRNGKey(2), 8)
    ceiling = solvers.assignment_stats(at, *map(jnp.asarray, solvers.optimum(expected)))
    np.testing.assert_allclose(stats[report.CEILING].episode_return, ceiling.episode_return,
                               rtol=1e-5)
    assert se == pytest.approx(float(jnp.mean(se_all)), rel=1e-4)
    assert set(stats) == {"optimum", report.CEILING, report.PAPER_GREEDY, "greedy", "random",
                          *(f"fixed {n}" for n in env.encoder_names)}
    greedy = solvers.assignment_stats(at, *solvers.greedy(at))
    np.testing.assert_allclose(stats["greedy"].episode_return, greedy.episode_return, rtol=1e-6)
    assert set(gaps) == {"optimum", *(f"fixed {n}" for n in env.encoder_names)}
    assert all(np.all(g == 0.0) for g in gaps.values())  # solved exactly at this size


def test_expected_terms_in_chunks_equal_all_draws_at_once():
    env = SemComEnv(3, 4)
    p = env.default_params
    inst = jax.tree.map(lambda x: x[0], env.sample_instances(jax.random.PRNGKey(0), 1, p))
    key = jax.random.PRNGKey(4)
    one, se_one = solvers.expected_action_table(inst, p, env.table.data, key, 16,
                                                max_elements=36)  # 1 draw per chunk
    all_, se_all = solvers.expected_action_table(inst, p, env.table.data, key, 16)
    # Independent: the 16 draws' tables, averaged directly.
    draws = jax.vmap(solvers.UniformGenerator(3, 4), (0, None))(jax.random.split(key, 16), p)
    draws = draws.replace(distance_m=jnp.broadcast_to(inst.distance_m, draws.distance_m.shape),
                          user_xy_m=jnp.broadcast_to(inst.user_xy_m, draws.user_xy_m.shape),
                          interference_w=jnp.broadcast_to(inst.interference_w,
                                                          draws.interference_w.shape),
                          image_index=jnp.broadcast_to(inst.image_index,
                                                       draws.image_index.shape))
    tables = jax.vmap(solvers.action_table, (0, None, None))(draws, p, env.table.data)
    for got, se in ((one, se_one), (all_, se_all)):
        np.testing.assert_allclose(got.value, tables.value.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(se, tables.value.std(0) / 4.0, rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(got.delay_violation, tables.delay_violation.mean(0))


def dense_optimum(w, c):
    """The assignment with one 'unserved' column per user, no reduction."""
    u, q = w.shape
    full = np.concatenate([w, np.repeat(c[:, None], u, axis=1)], axis=1)
    r, cc = linear_sum_assignment(full, maximize=True)
    return full[r, cc].sum()


def value_of(w, c, rbs):
    assert len(set(rbs[rbs >= 0])) == int(np.sum(rbs >= 0))  # each RB at most once
    return np.where(rbs >= 0, w[np.arange(len(rbs)), np.maximum(rbs, 0)], c).sum()


@pytest.mark.parametrize("u,q,monotone,all_served", [
    (5, 12, True, False), (5, 12, False, False), (8, 3, True, False), (6, 6, False, False),
    (30, 90, True, False), (30, 90, False, False), (6, 15, True, True), (30, 90, True, True)])
def test_reduced_assignment_is_exact(u, q, monotone, all_served):
    rng = np.random.default_rng(u * q + monotone)
    w = rng.normal(size=(u, q))
    if monotone:  # every user ranks the RBs alike (ties included), the env's structure
        quality = np.sort(rng.integers(0, q // 2 + 1, size=q))[rng.permutation(q)]
        w = np.sort(rng.normal(size=(u, q)), axis=1)[:, np.argsort(np.argsort(quality))]
    if all_served:  # every user worth serving anywhere: all U best RBs are needed
        c = np.full(u, w.min() - 1.0)
    else:
        c = rng.normal(size=u) * 0.5
        c[0] = w[0].max() + 1.0  # a user never worth serving
    rbs, gap = solvers._lap(w, c)
    assert gap == 0.0
    assert (rbs >= 0).all() if all_served else rbs[0] == -1
    opt = dense_optimum(w, c)
    assert value_of(w, c, rbs) == pytest.approx(opt, abs=1e-9)
    # The auction (used above EXACT_UP_TO users) with the same reductions: within its
    # certificate, which is a true bound.
    rbs_a, gap_a = solvers._lap(w, c, exact_up_to=0, rtol=1e-3)
    assert (rbs_a >= 0).all() if all_served else rbs_a[0] == -1
    got = value_of(w, c, rbs_a)
    assert got <= opt + 1e-9 and opt <= got + gap_a + 1e-4
    if u * q <= 40:  # brute force
        best = max(value_of(w, c, np.array(r)) for r in itertools.product(range(-1, q), repeat=u)
                   if len({x for x in r if x >= 0}) == sum(x >= 0 for x in r))
        assert value_of(w, c, rbs) == pytest.approx(best, abs=1e-9)


def test_stats_from_episodes_equal_stats_from_tables():
    env = SemComEnv(7, 5)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(8), 16, p)
    at = solvers.batched_action_tables(inst, p, env.table.data)
    rng = np.random.default_rng(0)
    enc = jnp.asarray(rng.integers(0, 3, size=(16, 7)))
    rbs = jnp.asarray(np.stack([rng.permutation(np.r_[np.arange(5), -1, -1])
                                for _ in range(16)]))
    a = solvers.assignment_stats(at, enc, rbs)
    b = solvers.assignment_stats_of(inst, p, env.table.data, enc, rbs)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def test_a_report_computes_only_the_baselines_asked_for():
    env = SemComEnv(3, 4)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(0), 4, p)
    rep = report.baseline_report(inst, p, env.table.data, jax.random.PRNGKey(1),
                                 env.encoder_names, include=("greedy",), ceiling_draws=4,
                                 ceiling_key=jax.random.PRNGKey(2))
    assert set(rep) == {"optimum", "greedy", "random"}
    seen = []
    report.baseline_stats(inst, p, env.table.data, jax.random.PRNGKey(1), env.encoder_names,
                          include=(), progress=lambda done, n, s: seen.append((done, n, set(s))),
                          max_elements=3 * 4 * 3 * 2)  # two episodes per batch
    assert [(d, n) for d, n, _ in seen] == [(2, 4), (4, 4)]
    assert seen[-1][2] == {"values", "optimum", "random"}
    for bad in (dict(random_draws=0), dict(ceiling_draws=-1), dict(random_draws=2.5)):
        with pytest.raises(ValueError, match=next(iter(bad)) + " must be an int"):
            report.baseline_stats(inst, p, env.table.data, jax.random.PRNGKey(1),
                                  env.encoder_names, **bad)
    with pytest.raises(ValueError, match="unknown baseline.*'fixd'.*greedy, fixed, paper"):
        report.baseline_report(inst, p, env.table.data, jax.random.PRNGKey(1),
                               env.encoder_names, include=("fixd",))


def test_memory_estimate_is_bounded_by_the_batch_not_the_episodes():
    one = report.memory_estimate(1000, 2000, 3, 8)
    many = report.memory_estimate(1000, 2000, 3, 800)
    assert many - one == 792 * (7 * 1000 + 2000) * 4  # only the episodes themselves
    assert report.memory_estimate(1000, 2000, 3, 8, ceiling_draws=256) > one


def test_greedy_and_random_from_episodes_equal_them_from_tables():
    """No action table: greedy computes each user's row when it decides, random values its
    plays from the episode; the same assignments and statistics as from the tables."""
    env = SemComEnv(9, 7)
    p, table = env.default_params, env.table.data
    inst = env.sample_instances(jax.random.PRNGKey(5), 5, p)
    at = solvers.batched_action_tables(inst, p, table)
    for a, b in zip(solvers.greedy(at), solvers.greedy_of(inst, p, table)):
        np.testing.assert_array_equal(a, b)
    keys = jax.random.split(jax.random.PRNGKey(6), 5 * 4).reshape(5, 4, -1)
    for a, b in zip(jax.tree.leaves(solvers.random_stats(at, keys)),
                    jax.tree.leaves(solvers.random_stats_of(inst, p, table, keys))):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    # greedy_of holds one user's row per episode at a time, never the (U, K, Q) table
    assert largest_intermediate(lambda i: solvers.greedy_of(i, p, table), inst) < 5 * 9 * 3 * 7


def test_ranked_values_keep_the_best_rbs_in_chunks():
    env = SemComEnv(6, 10)
    p, table = env.default_params, env.table.data
    inst = jax.tree.map(lambda x: x[0], env.sample_instances(jax.random.PRNGKey(2), 1, p))
    at = solvers.action_table(inst, p, table)
    vals, order, mono = solvers.ranked_values(inst, p, table, 6, max_elements=2 * 3 * 10)
    assert bool(mono)
    np.testing.assert_array_equal(np.asarray(order),
                                  np.argsort(np.asarray(inst.interference_w), kind="stable"))
    np.testing.assert_allclose(vals, np.asarray(at.value)[:, :, np.asarray(order)[:6]],
                               rtol=1e-6)
    # two users' rows at a time: nothing as large as the table
    size = largest_intermediate(
        lambda i: solvers.ranked_values(i, p, table, 6, max_elements=2 * 3 * 10), inst)
    assert size < 6 * 3 * 10


def test_a_table_not_monotone_in_snr_is_solved_on_every_rb():
    """When a worse RB can be worth more (a score that falls with the SNR), the best-U-RBs
    reduction does not hold: the report's optimum is then the dense one over all Q RBs."""
    env = SemComEnv(4, 9)
    p, table = env.default_params, env.table.data
    bumpy = table.replace(score=table.score[:, ::-1])  # falls as the SNR rises
    inst = env.sample_instances(jax.random.PRNGKey(0), 3, p)
    _, _, mono = solvers.ranked_values(jax.tree.map(lambda x: x[0], inst), p, bumpy, 4)
    assert not bool(mono)
    stats, _, _ = report.baseline_stats(inst, p, bumpy, jax.random.PRNGKey(1),
                                        env.encoder_names, include=())
    at = solvers.batched_action_tables(inst, p, bumpy)
    best = np.asarray(at.value).max(axis=2)
    for i in range(3):
        want = dense_optimum(best[i].astype(np.float64),
                             np.asarray(at.unserved_value[i], np.float64))
        assert float(stats["optimum"].episode_return[i]) == pytest.approx(want, rel=1e-5)


def test_summarised_rows_carry_the_certificate():
    env = SemComEnv(3, 4)
    p = env.default_params
    inst = env.sample_instances(jax.random.PRNGKey(0), 4, p)
    stats, _, gaps = report.baseline_stats(inst, p, env.table.data, jax.random.PRNGKey(1),
                                           env.encoder_names, include=("fixed",))
    gaps = {**gaps, "optimum": np.full(4, 0.5)}  # as if the auction had solved it
    rows = report.summarise(stats, 3, gaps=gaps)
    r_opt, r_rand = rows["optimum"]["return"], rows["random"]["return"]
    assert rows["optimum"]["gap"] == 0.5
    assert rows["optimum"]["certified_gap"] == pytest.approx(0.5 / (r_opt - r_rand))
    assert rows["fixed ViT-B/32"]["certified_gap"] == 0.0 and "gap" not in rows["random"]
    assert "certificate" in report.explain(rows) and "5.2e" not in report.explain(rows)
    exact_rows = report.summarise(stats, 3, gaps={"optimum": np.zeros(4)})
    assert "certificate" not in report.explain(exact_rows)
