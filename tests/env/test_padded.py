"""Padded envs return exactly what unpadded ones do; a vmapped size sweep equals a looped one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.baselines import solvers
from semcom_jax.baselines.evaluate import greedy_episode
from semcom_jax.agents.config import TrainConfig
from semcom_jax.env import SemComEnv, uniform_legal_action
from semcom_jax.env.padded import PaddedSemComEnv, pad_instance, padded_params
from semcom_jax.env.wrappers import VecEnv
from semcom_jax.training.sweep import SizeSweep

MAX_U, MAX_Q = 4, 5


def _play(env, params, instance, decisions):
    obs, state = env.reset_to(instance, params)
    total, masks = 0.0, []
    for a in decisions:
        masks.append(np.asarray(obs.action_mask))
        obs, state, r, done, info = env.step_env(jax.random.PRNGKey(0), state, jnp.int32(a), params)
        total += float(r)
    return total, bool(done), masks


@pytest.mark.parametrize("reward", ["terminal", "dense"])
@pytest.mark.parametrize("u,q", [(2, 3), (3, 2), (4, 4), (1, 5)])
def test_padded_instance_returns_exactly_the_unpadded_return(u, q, reward):
    plain = SemComEnv(u, q, reward=reward)
    pad = PaddedSemComEnv(MAX_U, MAX_Q, reward=reward)
    p = plain.default_params
    pp = pad.check_params(padded_params(p, u, q))
    insts = plain.sample_instances(jax.random.PRNGKey(u * 10 + q), 8, p)
    rng = np.random.default_rng(0)
    for i in range(8):
        inst = jax.tree.map(lambda x: x[i], insts)
        # Random legal decisions in the unpadded env, translated to the padded action layout.
        obs, state = plain.reset_to(inst, p)
        decisions, padded_decisions = [], []
        for _ in range(u):
            a = int(uniform_legal_action(jax.random.PRNGKey(int(rng.integers(1 << 30))),
                                         obs.action_mask, plain))
            decisions.append(a)
            if a == plain.no_rb_action:
                padded_decisions.append(pad.no_rb_action)
            else:
                d = plain.actions.decode(a)
                padded_decisions.append(int(pad.actions.encode(d.encoder, d.rb)))
            obs, state, *_ = plain.step_env(jax.random.PRNGKey(0), state, jnp.int32(a), p)
        r_plain, _, _ = _play(plain, p, inst, decisions)
        padded_decisions += [0] * (MAX_U - u)  # whatever the policy does on padded users
        r_pad, done, masks = _play(pad, pp, pad_instance(inst, MAX_U, MAX_Q), padded_decisions)
        assert r_pad == r_plain and done
        for m in masks:  # padded RBs never legal; "no RB" always legal
            per_rb = m[:-1].reshape(pad.num_encoders, MAX_Q)
            assert not per_rb[:, q:].any()
            assert m[-1]


def test_padded_optimum_matches_the_solver():
    u, q = 3, 2
    plain = SemComEnv(u, q, reward="dense")
    pad = PaddedSemComEnv(MAX_U, MAX_Q, reward="dense")
    p = plain.default_params
    inst = plain.sample_instances(jax.random.PRNGKey(7), 4, p)
    tables = solvers.batched_action_tables(inst, p, plain.table.data)
    encoders, rbs_all = solvers.optimum(tables)
    opt_returns = np.asarray(solvers.assignment_stats(
        tables, jnp.asarray(np.where(rbs_all >= 0, encoders, 0)), jnp.asarray(rbs_all)
    ).episode_return)
    for i in range(4):
        enc, rbs = np.asarray(encoders[i]), np.asarray(rbs_all[i])
        acts = [pad.no_rb_action if r < 0 else int(k) * MAX_Q + int(r) for k, r in zip(enc, rbs)]
        r, _, _ = _play(pad, padded_params(p, u, q), pad_instance(
            jax.tree.map(lambda x: x[i], inst), MAX_U, MAX_Q), acts + [0] * (MAX_U - u))
        np.testing.assert_allclose(r, float(opt_returns[i]), rtol=1e-5)


def test_bad_active_sizes_are_refused():
    pad = PaddedSemComEnv(MAX_U, MAX_Q)
    with pytest.raises(ValueError, match="active_rbs"):
        pad.check_params(padded_params(pad.default_params, 2, MAX_Q + 1))
    with pytest.raises(ValueError, match="active_users"):
        pad.check_params(padded_params(pad.default_params, 0, 2))


@pytest.mark.slow
def test_vmapped_size_sweep_equals_sizes_one_by_one():
    cfg = TrainConfig.of(num_envs=16, episodes_per_rollout=1, total_env_steps=16 * 4 * 3,
                      hidden=(16,), rb_hidden=8, num_minibatches=2)
    sweep = SizeSweep(cfg, [(2, 3), (4, 5), (3, 2)])
    states, metrics = sweep.train(jax.random.PRNGKey(0))
    _, looped = sweep.train(jax.random.PRNGKey(0), vmapped=False)
    np.testing.assert_allclose(np.asarray(metrics["train_return"]),
                               np.asarray(looped["train_return"]), rtol=1e-4, atol=1e-4)
    rows = sweep.evaluate(states, num_episodes=16)
    assert [(r["num_users"], r["num_rbs"]) for r in rows] == [(2, 3), (4, 5), (3, 2)]
    assert all(np.isfinite(r["normalised"]) for r in rows)
    # One report row per size, normalised by that size's own baselines.
    for r in rows:
        assert {"return", "normalised", "unserved_rate", "encoder_share"} <= set(r)
        assert r["random_return"] < r["optimum_return"]
        np.testing.assert_allclose(r["normalised"], (r["return"] - r["random_return"])
                                   / (r["optimum_return"] - r["random_return"]), rtol=1e-9)
    # The row's return (the assignment valued on the unpadded action tables) is what the greedy
    # policy earns in the padded env, played with the same held-out episodes.
    u, q = 4, 5
    plain = SemComEnv(u, q, reward="dense")
    inst = plain.sample_instances(jax.random.PRNGKey(12345), 16, plain.default_params)
    padded = jax.vmap(lambda x: pad_instance(x, sweep.max_users, sweep.max_rbs))(inst)
    env = PaddedSemComEnv(sweep.max_users, sweep.max_rbs, reward="dense")
    params = jax.tree.map(lambda x: x[1], states.params)
    returns = jax.vmap(lambda i: greedy_episode(env, sweep.trainer.policy_logits, params, i,
                                                sweep.params[1])[1])(padded)
    np.testing.assert_allclose(rows[1]["return"], float(np.mean(returns)), rtol=1e-5)


def test_bench_runner_plays_whole_legal_episodes():
    # The runner that `semcom-jax bench` times: with a dense reward over 2 whole episodes per
    # env, each env's summed reward lies within what two episodes can pay.
    from semcom_jax.cli.bench import random_action_runner

    env = SemComEnv(2, 3, reward="dense")
    acc, obs = random_action_runner(env, 8, 4)(jax.random.PRNGKey(0))
    table, p = env.table.data, env.default_params
    lo = 2 * 2 * (float(np.min(table.score)) - p.lam_delay - p.lam_energy)
    hi = 2 * 2 * float(np.max(table.score))
    acc = np.asarray(acc)
    assert acc.shape == (8,) and np.all(np.isfinite(acc))
    assert np.all((acc >= lo) & (acc <= hi)) and len(np.unique(acc)) > 1
    assert bool(jnp.all(obs.action_mask[:, :3]))  # a fresh episode after the last step


@pytest.mark.parametrize("rng", ["threefry", "hash"])
def test_bench_runner_equals_a_step_by_step_replay(rng):
    # The runner draws each action from the observation it follows and carries it to the next
    # step: replayed one step at a time with the same keys, every action is legal under the mask
    # it was drawn from and the summed rewards agree.
    from semcom_jax.cli.bench import random_action_runner

    env = SemComEnv(3, 4, reward="dense", rng=rng)
    params, venv = env.default_params, VecEnv(env, 6)
    acc, last = random_action_runner(env, 6, 7)(jax.random.PRNGKey(3))
    k_reset, key, k_first = jax.random.split(jax.random.PRNGKey(3), 3)
    obs, vs = venv.reset(k_reset, params)
    a = env.actions.uniform_legal(k_first, obs.action_mask, rng)
    total = np.zeros(6, np.float32)
    for _ in range(7):
        assert bool(jnp.all(jnp.take_along_axis(obs.action_mask, a[:, None], axis=1)))
        key, ka, ks = jax.random.split(key, 3)
        obs, vs, r, _, _ = venv.step(ks, vs, a, params)
        total += np.asarray(r)
        a = env.actions.uniform_legal(ka, obs.action_mask, rng)
    np.testing.assert_allclose(np.asarray(acc), total, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(last.action_mask), np.asarray(obs.action_mask))


def test_padded_params_know_the_episode_length():
    env = PaddedSemComEnv(6, 8)
    assert env.default_params.max_steps_in_episode == 6
    checked = env.check_params(padded_params(SemComEnv(3, 4).default_params, 3, 4))
    assert checked.max_steps_in_episode == 6  # every padded episode lasts max_users steps
