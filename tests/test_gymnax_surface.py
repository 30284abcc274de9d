"""The gymnax-compatible surface: spaces, ``params=None``, the flatten helper, the log wrapper,
and the PureJaxRL-style example agent that uses only these."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.agents.evaluate import Evaluator
from semcom_jax.env import AutoResetEnv, LogWrapper, SemComEnv, flatten_observation
from semcom_jax.env.padded import PaddedSemComEnv

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "purejaxrl_ppo.py")


@pytest.mark.parametrize("make", [lambda: SemComEnv(3, 4, obs_mode="full"),
                                  lambda: SemComEnv(3, 4, flat_features=False),
                                  lambda: PaddedSemComEnv(4, 5)])
def test_spaces_describe_every_observation_and_action(make):
    env = make()
    space, act = env.observation_space(), env.action_space(env.default_params)
    assert act.n == env.num_actions
    obs, state = env.reset(jax.random.PRNGKey(0))  # params=None: the defaults
    for t in range(env.num_users):
        assert bool(space.contains(obs))
        for name, sub in space.spaces.items():
            x = getattr(obs, name)
            assert x.shape == sub.shape and x.dtype == sub.dtype, name
        a = env.actions.uniform_legal(jax.random.PRNGKey(t), obs.action_mask)
        assert bool(act.contains(a))
        obs, state, *_ = env.step(jax.random.PRNGKey(10 + t), state, a)
    assert not bool(act.contains(env.num_actions)) and not bool(act.contains(-1))
    sample = space.sample(jax.random.PRNGKey(1))
    assert set(sample) == set(space.spaces) and bool(space.contains(sample))
    wrong = dict(sample, features=jnp.full(space["features"].shape, 1e3))
    assert space["features"].shape == (0,) or not bool(space.contains(wrong))


def test_params_none_means_the_defaults():
    env = SemComEnv(3, 4)
    key = jax.random.PRNGKey(5)
    o1, s1 = env.reset(key)
    o2, s2 = env.reset(key, env.default_params)
    r1 = env.step(key, s1, 2)[2]
    r2 = env.step(key, s2, 2, env.default_params)[2]
    for a, b in zip(jax.tree.leaves((o1, s1, r1)), jax.tree.leaves((o2, s2, r2))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_flatten_observation_holds_every_field():
    flat_env, set_env = SemComEnv(3, 4, obs_mode="full"), SemComEnv(3, 4, obs_mode="full",
                                                                    flat_features=False)
    key = jax.random.PRNGKey(2)
    o_flat, _ = flat_env.reset(key)
    o_set, _ = set_env.reset(key)
    x, mask = flatten_observation(o_flat)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(o_flat.features))
    y, _ = flatten_observation(o_set)
    q, u = 4, 3
    assert y.shape == (q * 3 + u * 7 + u * 5 + 5,)
    np.testing.assert_array_equal(np.asarray(y[:q * 3]), np.asarray(o_set.rb_features).ravel())
    status = np.asarray(y[q * 3 + u * 7:q * 3 + u * 7 + u * 5]).reshape(u, 5)
    np.testing.assert_array_equal(status.argmax(-1), np.asarray(o_set.user_status))
    batch = jax.tree.map(lambda a: jnp.stack([a, a]), o_set)  # leading batch axes work too
    np.testing.assert_array_equal(np.asarray(flatten_observation(batch)[0][1]), np.asarray(y))
    assert mask.shape == (flat_env.num_actions,)


def test_log_wrapper_reports_each_finished_episode():
    env = SemComEnv(3, 4, reward="dense")
    logged = LogWrapper(AutoResetEnv(env))
    key = jax.random.PRNGKey(0)
    obs, state = logged.reset(key)
    step = jax.jit(logged.step)
    returns, running, finished = [], 0.0, 0
    for t in range(3 * 4):
        a = env.actions.uniform_legal(jax.random.fold_in(key, t), obs.action_mask)
        obs, state, r, done, info = step(jax.random.fold_in(key, 100 + t), state, a)
        running += float(r)
        if bool(done):
            finished += 1
            returns.append(running)
            running = 0.0
            assert bool(info["returned_episode"]) and int(info["returned_episode_lengths"]) == 3
        else:
            assert not bool(info["returned_episode"])
        if returns:
            np.testing.assert_allclose(float(info["returned_episode_returns"]), returns[-1],
                                       rtol=1e-6)
    assert finished == 4 and logged.num_actions == env.num_actions


@pytest.mark.slow
def test_purejaxrl_style_example_learns():
    spec = importlib.util.spec_from_file_location("purejaxrl_ppo", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    returns = np.asarray(jax.jit(example.make_train(total_steps=200_000))(jax.random.PRNGKey(0)))
    env = SemComEnv(3, 4, obs_mode="full", reward="dense")
    ev = Evaluator(env, env.default_params, 512, 7, ceiling_draws=0)
    norm = lambda r: (r - ev.r_random) / (ev.r_opt - ev.r_random)  # noqa: E731
    # Sampled (not greedy) actions, yet well above random after 200 k steps (0.94 measured).
    assert norm(returns[0]) < 0.3 and norm(returns[-len(returns) // 4:].mean()) > 0.7
